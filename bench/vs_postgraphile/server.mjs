// PostGraphile v5 in library mode, WORKERS processes under Node's cluster module (one port).
import cluster from "node:cluster";
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { grafserv } from "postgraphile/grafserv/node";
import preset from "./graphile.config.mjs";

const workers = Number(process.env.WORKERS || 1);
if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on("exit", (worker, code) => console.error(`worker ${worker.process.pid} exited ${code}`));
  const stop = () => {
    for (const id in cluster.workers) cluster.workers[id].process.kill("SIGTERM");
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
} else {
  const pgl = postgraphile(preset);
  const serv = pgl.createServ(grafserv);
  const server = createServer();
  server.on("error", (e) => console.error(e));
  serv.addTo(server).catch((e) => {
    console.error(e);
    process.exit(1);
  });
  server.listen(Number(process.env.PORT), "127.0.0.1", () => console.error(`listening ${process.pid}`));
}
