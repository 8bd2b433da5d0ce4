// The BullMQ side of scripts/bench-jobs: enqueue and process no-op jobs on a Redis the script
// started (and flushes between phases). Workloads, each on an empty database:
//   enqueue bulk    — PRODUCERS tasks, each `queue.addBulk` of BATCH jobs, until JOBS are stored;
//   enqueue single  — PRODUCERS tasks, each `queue.add` of one job at a time;
//   process         — JOBS pre-enqueued, then one `Worker` with a no-op processor at each of
//                     CONCURRENCY (comma-separated); time from the worker's start to the last
//                     `completed` event (emitted after the job is moved to completed in Redis);
//   mixed           — the worker at the best concurrency running while PRODUCERS tasks `add`
//                     JOBS jobs one by one; time from the start to the last completion.
// Options left at BullMQ's defaults (metrics are opt-in and stay off; the events stream keeps its
// default cap) except `removeOnComplete: { count: 1000 }`, the same retention as Switchboard's
// default (1 000 completed jobs per queue) — without it BullMQ keeps every completed job.
// Prints one human line per workload on stdout and appends JSON lines to RESULTS (if set), with
// Redis's work per job over the workload (`INFO cpu commandstats` before and after).
//   REDIS_URL=redis://127.0.0.1:6379 JOBS=50000 PRODUCERS=8 BATCH=100 CONCURRENCY=50,100,200,500 \
//     RESULTS=/tmp/results.jsonl node bench.mjs
import { appendFileSync } from "node:fs";
import { Queue, Worker } from "bullmq";
import IORedis from "ioredis";

const url = new URL(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
const connection = { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null };
const jobs = Number(process.env.JOBS ?? 50000);
const producers = Number(process.env.PRODUCERS ?? 8);
const batch = Number(process.env.BATCH ?? 100);
const concurrencies = (process.env.CONCURRENCY ?? "50,100,200,500").split(",").map(Number);
const results = process.env.RESULTS;
const jobOptions = { removeOnComplete: { count: 1000 } };
const payload = (i) => ({ user: `u${i % 1000}`, kind: "bench", n: i });

const admin = new IORedis(connection);
let phase = 0;

/** A fresh database and a queue of its own name for one phase. */
async function freshQueue() {
  await admin.flushdb();
  phase += 1;
  const queue = new Queue(`bench${phase}`, { connection, defaultJobOptions: jobOptions });
  await queue.waitUntilReady();
  return queue;
}

/** Redis's counters: CPU seconds, script calls and µs, commands (the benchmark's own excluded). */
async function redisCounters() {
  const info = await admin.call("INFO", "cpu", "commandstats");
  const c = { cpu: 0, scripts: 0, scriptUs: 0, commands: 0 };
  for (const line of info.split(/\r?\n/)) {
    const cpu = /^used_cpu_(user|sys):([\d.]+)/.exec(line);
    if (cpu) c.cpu += Number(cpu[2]);
    const cmd = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line);
    if (!cmd || ["info", "flushdb", "config", "ping", "client", "hello", "select"].includes(cmd[1])) continue;
    c.commands += Number(cmd[2]);
    if (["evalsha", "eval", "evalsha_ro", "eval_ro", "fcall"].includes(cmd[1])) {
      c.scripts += Number(cmd[2]);
      c.scriptUs += Number(cmd[3]);
    }
  }
  return c;
}

/** Redis's work per job since `before`. */
async function redisCost(before, jobCount) {
  const now = await redisCounters();
  return {
    cpu_us: ((now.cpu - before.cpu) * 1e6) / jobCount,
    scripts: (now.scripts - before.scripts) / jobCount,
    script_us: (now.scriptUs - before.scriptUs) / jobCount,
    commands: (now.commands - before.commands) / jobCount,
  };
}

function report(workload, jobCount, seconds, note, redis) {
  const rate = jobCount / seconds;
  const cost = redis
    ? `; redis per job: ${redis.cpu_us.toFixed(1)} µs CPU, ${redis.scripts.toFixed(2)} scripts (${redis.script_us.toFixed(1)} µs), ${redis.commands.toFixed(1)} commands`
    : "";
  console.log(
    `bullmq ${workload.padEnd(16)} ${Math.round(rate).toString().padStart(8)} jobs/s  (${jobCount} jobs in ${seconds.toFixed(2)} s; ${note}${cost})`,
  );
  if (results) {
    const line = { target: "bullmq", workload, rate, jobs: jobCount, seconds, note, redis };
    appendFileSync(results, `${JSON.stringify(line)}\n`);
  }
  return rate;
}

/** Runs `produce(first, count)` from `producers` tasks over chunks of `chunk` until `total`. */
async function produceAll(total, chunk, produce) {
  let next = 0;
  const task = async () => {
    while (next < total) {
      const first = next;
      const count = Math.min(chunk, total - first);
      next += count;
      await produce(first, count);
    }
  };
  await Promise.all(Array.from({ length: producers }, task));
}

const addBulk = (queue) => (first, count) =>
  queue.addBulk(Array.from({ length: count }, (_, k) => ({ name: "noop", data: payload(first + k), opts: jobOptions })));
const addOne = (queue) => (first) => queue.add("noop", payload(first), jobOptions);

/** A worker with a no-op processor; resolves with the seconds until `total` completions. */
function work(queue, concurrency, total, whileRunning = async () => {}) {
  return new Promise((resolve, reject) => {
    let done = 0;
    let started = 0;
    const worker = new Worker(queue.name, async () => null, { connection, concurrency, autorun: false });
    worker.on("error", reject);
    worker.on("failed", (_job, err) => reject(err));
    worker.on("completed", () => {
      done += 1;
      if (done === total) {
        const seconds = (performance.now() - started) / 1000;
        worker.close().then(() => resolve(seconds), reject);
      }
    });
    worker
      .waitUntilReady()
      .then(() => {
        started = performance.now();
        worker.run().catch(reject);
        return whileRunning();
      })
      .catch(reject);
  });
}

async function main() {
  let queue = await freshQueue();
  let before = await redisCounters();
  let t = performance.now();
  await produceAll(jobs, batch, addBulk(queue));
  let seconds = (performance.now() - t) / 1000;
  report("enqueue_bulk", jobs, seconds, `${producers} producers, addBulk of ${batch}`, await redisCost(before, jobs));
  await queue.close();

  queue = await freshQueue();
  before = await redisCounters();
  t = performance.now();
  await produceAll(jobs, 1, addOne(queue));
  seconds = (performance.now() - t) / 1000;
  report("enqueue_single", jobs, seconds, `${producers} concurrent add`, await redisCost(before, jobs));
  await queue.close();

  let best = { rate: 0, concurrency: concurrencies[0] };
  for (const concurrency of concurrencies) {
    queue = await freshQueue();
    await produceAll(jobs, batch, addBulk(queue));
    before = await redisCounters();
    seconds = await work(queue, concurrency, jobs);
    const redis = await redisCost(before, jobs);
    const rate = report(`process_c${concurrency}`, jobs, seconds, `worker concurrency ${concurrency}`, redis);
    if (rate > best.rate) best = { rate, concurrency, redis };
    await queue.close();
  }
  report("process", jobs, jobs / best.rate, `best of ${concurrencies}: worker concurrency ${best.concurrency}`, best.redis);

  queue = await freshQueue();
  before = await redisCounters();
  seconds = await work(queue, best.concurrency, jobs, () => produceAll(jobs, 1, addOne(queue)));
  const note = `worker concurrency ${best.concurrency}, ${producers} concurrent add`;
  report("mixed", jobs, seconds, note, await redisCost(before, jobs));
  await queue.close();
  await admin.flushdb();
  await admin.quit();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
