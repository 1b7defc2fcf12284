// Shared helpers of the Node peer scripts: argument parsing, CHECK output, the rules of interop.proto.
export function parseArgs(argv = process.argv.slice(2)) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, "")] = argv[i + 1];
  return out;
}

export function emit(kind, state, detail = "") {
  process.stdout.write(`CHECK ${kind} ${state} ${String(detail).replace(/\n/g, " ")}\n`);
}

export function expect(ok, what) {
  if (!ok) throw new Error(what);
}

export async function run(kind, fn, timeoutMs = 15000) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs / 1000} s`)), timeoutMs);
  });
  try {
    emit(kind, "PASS", await Promise.race([fn(), timeout]));
  } catch (e) {
    emit(kind, "FAIL", e && e.message ? e.message : String(e));
  } finally {
    clearTimeout(timer);
  }
}

/** An async iterable fed by push(); push(null) ends it. */
export function queue() {
  const items = [];
  let wake = null;
  return {
    push(item) {
      items.push(item);
      if (wake) { wake(); wake = null; }
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        while (items.length === 0) await new Promise((r) => (wake = r));
        const item = items.shift();
        if (item === null) return;
        yield item;
      }
    },
  };
}

export const DETAIL_TYPE = "interop.v1.ErrorDetail";
export const FAIL_CODE = "failed_precondition";
export const FAIL_MESSAGE = "interop failure";
