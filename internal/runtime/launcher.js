// Eddy's Node.js launcher: the actionloop child that the eddy runtime server
// starts for the "nodejs" launcher.
//
// Usage: node launcher.js <action dir> [<main function name>] [--concurrent]
//
// It loads the action (require(<action dir>): package.json "main" or
// index.js; an ES module is imported), finds the function named <main>
// (default "main") among its exports, acknowledges on fd 3 ({"ok":true}, or
// {"ok":false,"error":...} with the stack on stderr when loading fails), then
// loops: read one JSON line from stdin ({"value":{...},"activation_id":...}),
// export every key but "value" as __OW_<KEY>, call main(value) and await its
// result, and write the result as one JSON line on fd 3.
//
// stdout and stderr are written synchronously (console.* and
// process.stdout/stderr are replaced), so that everything an activation
// logged is out before its answer: Node writes to pipes asynchronously, and
// the server writes the activation's sentinels as soon as it has the answer.
//
// With --concurrent, every line read is "<tag> <json>" and runs at once (not
// waiting for the runs before it); its answer is "<tag> <json>", and what it
// writes to stdout and stderr goes out as whole lines "\x1e<tag> <text>",
// the tag taken from an AsyncLocalStorage that follows the activation's
// async calls (lines written outside any activation go out untagged).
// process.env's __OW_* variables are process-wide: with overlapping
// activations they hold the last one's values.
'use strict';

const fs = require('fs');
const path = require('path');
const readline = require('readline');
const { Writable } = require('stream');
const { pathToFileURL } = require('url');

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

// writeAll writes data to fd synchronously, waiting out EAGAIN on a
// non-blocking descriptor.
function writeAll(fd, data) {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
      Atomics.wait(sleepCell, 0, 0, 1);
    }
  }
}

function syncStream(fd) {
  const s = new Writable({
    write(chunk, encoding, cb) {
      try {
        writeAll(fd, chunk);
      } catch (e) {
        // A closed stdout or stderr must not crash the action.
      }
      cb();
    },
    destroy(err, cb) {
      cb(err); // never close fd 1 or 2
    },
  });
  s.fd = fd;
  s.isTTY = false;
  s._isStdio = true;
  return s;
}

const concurrentMode = process.argv.slice(4).includes('--concurrent');
const tagStore = concurrentMode ? new (require('async_hooks').AsyncLocalStorage)() : null;

// taggedStream is syncStream for concurrent mode: whole lines, each tagged
// with the activation of the async context that wrote it.
function taggedStream(fd) {
  const partial = new Map();
  const line = (tag, text) => (tag === undefined ? text + '\n' : '\x1e' + tag + ' ' + text + '\n');
  const put = (tag, text) => {
    const lines = ((partial.get(tag) || '') + text).split('\n');
    const rest = lines.pop();
    if (rest !== '') partial.set(tag, rest);
    else partial.delete(tag);
    if (lines.length > 0) {
      try {
        writeAll(fd, lines.map((l) => line(tag, l)).join(''));
      } catch (e) {
        // A closed stdout or stderr must not crash the action.
      }
    }
  };
  const s = syncStream(fd);
  s.write = function (chunk, encoding, cb) {
    if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    put(tagStore.getStore(), text);
    if (typeof cb === 'function') process.nextTick(cb);
    return true;
  };
  s.end_ = (tag) => {
    const rest = partial.get(tag);
    if (rest !== undefined) {
      partial.delete(tag);
      try {
        writeAll(fd, line(tag, rest));
      } catch (e) {
        // nothing to do
      }
    }
  };
  return s;
}

const stdout = concurrentMode ? taggedStream(1) : syncStream(1);
const stderr = concurrentMode ? taggedStream(2) : syncStream(2);
Object.defineProperty(process, 'stdout', { configurable: true, enumerable: true, get: () => stdout });
Object.defineProperty(process, 'stderr', { configurable: true, enumerable: true, get: () => stderr });
{
  const con = new console.Console({ stdout, stderr, colorMode: false });
  for (const k of Object.keys(console)) {
    if (typeof con[k] === 'function') console[k] = con[k];
  }
}

function answer(obj) {
  let data;
  try {
    data = JSON.stringify(obj);
  } catch (e) {
    data = JSON.stringify({ error: 'The action returned a result that is not JSON: ' + e.message });
  }
  if (data === undefined) {
    data = JSON.stringify({ error: 'The action returned a result that is not JSON.' });
  }
  writeAll(3, data + '\n');
}

function errorValue(err) {
  // An Error (or a primitive) becomes its string; a plain object, as
  // OpenWhisk's Node.js runtime keeps it, is the error value itself.
  if (err !== null && typeof err === 'object' && !(err instanceof Error)) return err;
  return String(err);
}

function logError(err) {
  const text = err instanceof Error && err.stack ? err.stack : String(err);
  try {
    if (concurrentMode) {
      stderr.write(text + '\n');
      return;
    }
    writeAll(2, text + '\n');
  } catch (e) {
    // nothing to do
  }
}

async function load(dir, mainName) {
  let mod;
  try {
    mod = require(dir);
  } catch (e) {
    if (e.code !== 'ERR_REQUIRE_ESM') throw e;
    mod = await import(pathToFileURL(require.resolve(dir)).href);
  }
  let fn = mod == null ? undefined : mod[mainName];
  if (typeof fn !== 'function' && mod != null && typeof mod.default === 'object' && mod.default !== null) {
    fn = mod.default[mainName];
  }
  if (typeof fn !== 'function' && typeof mod === 'function' && mainName === 'main') fn = mod;
  if (typeof fn !== 'function') {
    throw new Error("the action has no function named '" + mainName + "' (export it: module.exports." + mainName + ' = ...)');
  }
  return fn;
}

async function run() {
  const dir = path.resolve(process.argv[2]);
  const mainName = process.argv[3] || 'main';

  let fn;
  try {
    fn = await load(dir, mainName);
  } catch (e) {
    logError(e);
    const name = e instanceof Error ? e.name : 'Error';
    const msg = e instanceof Error ? e.message : String(e);
    answer({ ok: false, error: name + ': ' + msg });
    process.exit(1);
  }
  answer({ ok: true });
  if (concurrentMode) return runConcurrent(fn);

  let exported = new Set();
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  for await (const line of rl) {
    if (line.trim() === '') continue;
    let msg;
    try {
      msg = JSON.parse(line);
      if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) throw new Error('the message is not a JSON object');
    } catch (e) {
      answer({ error: 'The runtime sent an invalid message: ' + e.message });
      continue;
    }
    const seen = new Set();
    for (const [key, val] of Object.entries(msg)) {
      if (key === 'value') continue;
      const name = '__OW_' + key.toUpperCase();
      process.env[name] = typeof val === 'string' ? val : JSON.stringify(val);
      seen.add(name);
    }
    for (const name of exported) {
      if (!seen.has(name)) delete process.env[name];
    }
    exported = seen;

    let res;
    try {
      res = await fn(msg.value === undefined || msg.value === null ? {} : msg.value);
      if (res === null || typeof res !== 'object') res = { error: 'The action did not return a dictionary.' };
    } catch (e) {
      logError(e);
      res = { error: errorValue(e) };
    }
    answer(res);
  }
  process.exit(0);
}

async function runOne(fn, tag, msg) {
  let res;
  try {
    res = await fn(msg.value === undefined || msg.value === null ? {} : msg.value);
    if (res === null || typeof res !== 'object') res = { error: 'The action did not return a dictionary.' };
  } catch (e) {
    logError(e);
    res = { error: errorValue(e) };
  }
  stdout.end_(tag);
  stderr.end_(tag);
  let data;
  try {
    data = JSON.stringify(res);
  } catch (e) {
    data = JSON.stringify({ error: 'The action returned a result that is not JSON: ' + e.message });
  }
  if (data === undefined) data = JSON.stringify({ error: 'The action returned a result that is not JSON.' });
  writeAll(3, tag + ' ' + data + '\n');
}

async function runConcurrent(fn) {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  for await (const line of rl) {
    if (line.trim() === '') continue;
    const sp = line.indexOf(' ');
    const tag = sp < 0 ? line : line.slice(0, sp);
    let msg;
    try {
      msg = JSON.parse(sp < 0 ? '' : line.slice(sp + 1));
      if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) throw new Error('the message is not a JSON object');
    } catch (e) {
      writeAll(3, tag + ' ' + JSON.stringify({ error: 'The runtime sent an invalid message: ' + e.message }) + '\n');
      continue;
    }
    for (const [key, val] of Object.entries(msg)) {
      if (key === 'value') continue;
      process.env['__OW_' + key.toUpperCase()] = typeof val === 'string' ? val : JSON.stringify(val);
    }
    tagStore.run(tag, () => {
      runOne(fn, tag, msg).catch(logError);
    });
  }
  process.exit(0);
}

run().catch((e) => {
  logError(e);
  process.exit(1);
});
