// The Socket.IO server scripts/bench-gateway compares Switchboard's gateway with: a room per
// fan-out, joined and left by socket events, and one HTTP request per publication
// (`POST /publish {"room": ..., "data": ...}` -> `io.to(room).emit("pub", data)`), the same shape
// as Switchboard's `POST /api/v1/publish`. Defaults otherwise (WebSocket only, no compression,
// 25 s ping).
//   PORT=7800 BENCH_API_KEY=... node server.mjs
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.env.PORT ?? 7800);
const apiKey = process.env.BENCH_API_KEY ?? "";
const maxBody = 64 * 1024;

const http = createServer((req, res) => {
  if (req.method !== "POST" || req.url !== "/publish") {
    // engine.io handles /socket.io/ itself; anything else is unknown.
    if (!req.url?.startsWith("/socket.io/")) res.writeHead(404).end();
    return;
  }
  if (apiKey && req.headers.authorization !== `Bearer ${apiKey}`) {
    res.writeHead(401).end();
    return;
  }
  const chunks = [];
  let size = 0;
  req.on("data", (c) => {
    size += c.length;
    if (size > maxBody) req.destroy();
    else chunks.push(c);
  });
  req.on("end", () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (typeof body?.room !== "string" || body.data === undefined) {
      res.writeHead(400).end();
      return;
    }
    io.to(body.room).emit("pub", body.data);
    res.writeHead(200, { "content-type": "application/json" }).end("{}");
  });
});

const io = new Server(http, { transports: ["websocket"], serveClient: false });
io.on("connection", (socket) => {
  // Acknowledged, so the client knows it is in the room before anything is published.
  socket.on("join", (room, ack) => {
    if (typeof room === "string") socket.join(room);
    if (typeof ack === "function") ack();
  });
  socket.on("leave", (room, ack) => {
    if (typeof room === "string") socket.leave(room);
    if (typeof ack === "function") ack();
  });
});

http.listen(port, "127.0.0.1", () => {
  // A plain line the script waits for.
  console.log(`socket.io listening on http://127.0.0.1:${port}`);
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(0));
