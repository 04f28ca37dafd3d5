// BullMQ side of the benchmark: the same workloads where BullMQ has an equivalent.
// Usage: node bench.mjs <port> [--quick]. Prints "bullmq <workload> key=value ..." lines.
import { Queue, Worker, QueueEvents, FlowProducer } from 'bullmq';
import IORedis from 'ioredis';

const port = Number(process.argv[2]);
const quick = process.argv.includes('--quick');
const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };
const admin = new IORedis(connection);
const print = (w, kv) => console.log(`bullmq ${w} ` + Object.entries(kv).map(([k, v]) => `${k}=${typeof v === 'number' ? Math.round(v * 100) / 100 : v}`).join(' '));

async function calls() {
  const info = await admin.info('commandstats');
  let n = 0;
  for (const line of info.split('\n')) {
    const m = line.match(/^cmdstat_(\w+):calls=(\d+)/);
    if (m && ['evalsha', 'eval', 'bzpopmin', 'brpoplpush', 'blmove', 'xread', 'xadd', 'multi', 'exec'].includes(m[1])) n += Number(m[2]);
  }
  return n;
}

// Redis's own CPU seconds (user + system), to compare the server-side cost per job.
async function redisCpu() {
  const info = await admin.info('cpu');
  return ['used_cpu_sys', 'used_cpu_user'].reduce((s, k) => s + Number(info.match(new RegExp(`^${k}:([0-9.]+)`, 'm'))[1]), 0);
}

async function allCommands() {
  const info = await admin.info('commandstats');
  let n = 0;
  for (const line of info.split('\n')) {
    const m = line.match(/^cmdstat_([\w|]+):calls=(\d+)/);
    if (m && m[1] !== 'info') n += Number(m[2]);
  }
  return n;
}

// Like the other systems, an unmeasured warm-up batch first (JIT warm), then the measured one.
async function throughput(n) {
  await throughputOnce(quick ? 5000 : 20000, false);
  await throughputOnce(n, true);
}

async function throughputOnce(n, report) {
  const name = 'tp' + Date.now();
  const queue = new Queue(name, { connection });
  for (let b = 0; b < n; b += 1000)
    await queue.addBulk(Array.from({ length: Math.min(1000, n - b) }, (_, i) => ({ name: 'noop', data: {}, opts: { removeOnComplete: true } })));
  const before = await calls();
  const [cpu0, cmd0, wcpu0] = [await redisCpu(), await allCommands(), process.cpuUsage()];
  let done = 0;
  const start = process.hrtime.bigint();
  const finished = new Promise(resolve => {
    const worker = new Worker(name, async () => null, { connection, concurrency: 64, autorun: true });
    worker.on('completed', () => { if (++done === n) resolve(worker); });
  });
  const worker = await finished;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const rt = (await calls() - before) / n + 1;
  const wcpu = process.cpuUsage(wcpu0);
  if (report) print('throughput_nostep', { runs_per_s: n / seconds, runs: n, round_trips: rt, worker_cpu_us: (wcpu.user + wcpu.system) / n,
    redis_cpu_us: (await redisCpu() - cpu0) * 1e6 / n, redis_commands: (await allCommands() - cmd0) / n });
  await worker.close(); await queue.obliterate({ force: true }); await queue.close();
}

async function latency(rate, seconds) {
  const name = 'lat' + Date.now();
  const queue = new Queue(name, { connection });
  const events = new QueueEvents(name, { connection });
  await events.waitUntilReady();
  const worker = new Worker(name, async () => 1, { connection, concurrency: 64 });
  const samples = [];
  const total = rate * seconds;
  const start = process.hrtime.bigint();
  const pending = [];
  while (pending.length < total) {
    const due = Math.min(total, Math.floor(Number(process.hrtime.bigint() - start) / 1e9 * rate) + 1);
    while (pending.length < due) {
      pending.push((async () => {
        const t0 = process.hrtime.bigint();
        const job = await queue.add('ping', {}, { removeOnComplete: 1000 });
        await job.waitUntilFinished(events, 30000);
        samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
      })());
    }
    await new Promise(r => setTimeout(r, 1));
  }
  await Promise.all(pending);
  samples.sort((a, b) => a - b);
  print('latency', { rate, p50_ms: samples[Math.floor(samples.length / 2)], p99_ms: samples[Math.floor(samples.length * 0.99)], runs: samples.length });
  await worker.close(); await events.close(); await queue.obliterate({ force: true }); await queue.close();
}

async function children(parents) {
  const name = 'flow' + Date.now();
  const flow = new FlowProducer({ connection });
  const childWorker = new Worker(name + '-c', async () => 1, { connection, concurrency: 64 });
  let done = 0;
  const start = process.hrtime.bigint();
  const finished = new Promise(resolve => {
    const parentWorker = new Worker(name, async job => Object.values(await job.getChildrenValues()).reduce((a, b) => a + b, 0),
      { connection, concurrency: 64 });
    parentWorker.on('completed', () => { if (++done === parents) resolve(parentWorker); });
  });
  for (let p = 0; p < parents; p++)
    await flow.add({ name: 'parent', queueName: name, children: Array.from({ length: 10 }, () => ({ name: 'child', queueName: name + '-c' })) });
  const parentWorker = await finished;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  print('children', { parents_per_s: parents / seconds, runs_per_s: parents * 11 / seconds, parents });
  await parentWorker.close(); await childWorker.close(); await flow.close();
}

await throughput(quick ? 5000 : 20000);
await latency(500, quick ? 3 : 10);
await children(quick ? 50 : 200);
await admin.quit();
process.exit(0);
