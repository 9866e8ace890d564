/**
 * The load generator of the end-to-end section, run as its own process so the gateway and the load
 * each have a core: autocannon POSTs /v1/messages for `durationS` seconds, rotating through `users`
 * users, and prints its figures as one JSON line.
 */
import autocannon from 'autocannon';
import { userId } from './lib/fixtures.ts';

interface LoadParams {
  url: string;
  users: number;
  durationS: number;
  connections: number;
}

const params = JSON.parse(process.argv[2] ?? '{}') as LoadParams;
const bodies = Array.from({ length: params.users }, (_, i) => JSON.stringify({ user_id: userId(i), text: 'hello there' }));
let next = 0;

const result = await autocannon({
  url: `${params.url}/v1/messages`,
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  connections: params.connections,
  duration: params.durationS,
  requests: [
    {
      setupRequest: (request) => {
        request.body = bodies[next++ % bodies.length];
        return request;
      },
    },
  ],
});

const statuses = Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, { count }]) => [code, count]));
process.stdout.write(
  `${JSON.stringify({
    requests: result.requests.total,
    seconds: result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    statuses,
  })}\n`,
);
