-- job_get.lua: one job's record.
-- KEYS[1]: the job's hash. ARGV[1]: the queue prefix; ARGV[2]: job id.
-- Returns the record (see job_common.lua) or nil.
return record(ARGV[2]) or false
