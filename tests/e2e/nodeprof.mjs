// nodeprof.mjs URL APP: profile a small Node program with @pyroscope/nodejs (wall
// with CPU time, and heap) while it runs a known hot function, hotNodeE2E, and let
// the SDK push to traced's /ingest (raw gzipped pprof, format=pprof, spyName=nodespy,
// labels in name=app{...}). Exits non-zero when the SDK reports an upload error.
import Pyroscope from '@pyroscope/nodejs';

const [url, app] = process.argv.slice(2);
if (!url || !app) {
    console.error('usage: nodeprof.mjs URL APP');
    process.exit(2);
}

const errors = [];
Pyroscope.setLogger({
    debug() {},
    info() {},
    trace() {},
    warn(...a) { errors.push(a.join(' ')); },
    error(...a) { errors.push(a.join(' ')); },
});
Pyroscope.init({
    serverAddress: url,
    appName: app,
    tags: { env: 'e2e', 'otel.scope.name': 'nodeprof' },
    flushIntervalMs: 1000,
    wall: { samplingDurationMs: 1000, collectCpuTime: true },
});
Pyroscope.start();

let sink = 0;
function hotNodeE2E(ms) {
    const end = Date.now() + ms;
    let x = 0;
    while (Date.now() < end) {
        for (let i = 0; i < 100000; i++) {
            x = (x * 31 + i) | 0;
        }
    }
    return x;
}
const garbage = [];
for (let round = 0; round < 5; round++) {
    sink += hotNodeE2E(500);
    garbage.push(new Array(10000).fill(round));
    await new Promise((r) => setTimeout(r, 10));
}
await Pyroscope.stop();
if (errors.length) {
    console.error('pyroscope errors:', errors.join('\n'));
    process.exit(1);
}
console.log('node profiled', sink !== 0 ? 'ok' : 'ok.');
