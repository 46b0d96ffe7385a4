"""Eddy's Python launcher: the actionloop child that the eddy runtime server
starts for the "python" launcher.

Usage: python3 launcher.py <action dir> [<main function name>] [--concurrent]

It imports <action dir>/__main__.py as the module "main__", acknowledges on
fd 3 ({"ok": true}, or {"ok": false, "error": ...} with the traceback on
stderr when the import fails), then loops: read one JSON line from stdin
({"value": {...}, "activation_id": ..., ...}), export every key but "value"
as __OW_<KEY>, call main(value), flush stdout and stderr, and write the
result as one JSON line on fd 3.

With --concurrent, every line read is "<tag> <json>" and runs on its own
thread; its answer is "<tag> <json>", and what it prints (sys.stdout and
sys.stderr are replaced) goes out as whole lines "\x1e<tag> <text>", the tag
taken from a context variable set on the activation's thread (lines written
outside any activation go out untagged). __OW_* variables are process-wide:
with overlapping activations they hold the last one's values.
"""

import importlib.util
import json
import os
import sys
import traceback


def _flush():
    try:
        sys.stdout.flush()
    except Exception:
        pass
    try:
        sys.stderr.flush()
    except Exception:
        pass


def main():
    # Line-buffered output: a run killed at its time limit keeps the lines
    # it printed before (its logs are read up to the kill).
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except Exception:
            pass
    action_dir = sys.argv[1]
    main_name = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else "main"
    out = os.fdopen(3, "wb")

    def answer(obj):
        _flush()
        try:
            data = json.dumps(obj)
        except Exception as ex:  # a result json cannot encode
            data = json.dumps({"error": "The action returned a result that is not JSON: %s" % ex})
        out.write(data.encode("utf-8") + b"\n")
        out.flush()

    try:
        sys.path.insert(0, action_dir)
        spec = importlib.util.spec_from_file_location("main__", os.path.join(action_dir, "__main__.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules["main__"] = module
        spec.loader.exec_module(module)
        fn = getattr(module, main_name, None)
        if fn is None or not callable(fn):
            raise AttributeError("the action has no function named '%s'" % main_name)
    except BaseException as ex:
        traceback.print_exc()
        answer({"ok": False, "error": "%s: %s" % (type(ex).__name__, ex)})
        sys.exit(1)
    answer({"ok": True})
    if "--concurrent" in sys.argv[3:]:
        concurrent(fn)
        return

    exported = set()
    environ = os.environ
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            break
        try:
            msg = json.loads(line)
            if not isinstance(msg, dict):
                raise ValueError("the message is not a JSON object")
        except Exception as ex:
            answer({"error": "The runtime sent an invalid message: %s" % ex})
            continue
        seen = set()
        for key, val in msg.items():
            if key == "value":
                continue
            name = "__OW_" + key.upper()
            if not isinstance(val, str):
                val = json.dumps(val)
            # Most of them are the same from one run to the next: setting
            # one (putenv) costs more than reading it.
            if environ.get(name) != val:
                environ[name] = val
            seen.add(name)
        for name in exported - seen:
            environ.pop(name, None)
        exported = seen
        try:
            res = fn(msg.get("value", {}))
            if not isinstance(res, (dict, list)):
                res = {"error": "The action did not return a dictionary."}
        except Exception as ex:
            traceback.print_exc()
            res = {"error": str(ex)}
        answer(res)


def concurrent(fn):
    # Imported here: the one-at-a-time path does not pay for them.
    import contextvars
    import io
    import threading

    TAG_MARK = "\x1e"
    _tag = contextvars.ContextVar("eddy_activation_tag", default=None)

    def _write_all(fd, data):
        while data:
            n = os.write(fd, data)
            data = data[n:]

    class _TaggedStream(io.TextIOBase):
        """A text stream that writes whole lines, each tagged with the
        activation of the thread (context) that wrote it."""

        def __init__(self, fd, lock):
            self._fd = fd
            self._lock = lock
            self._partial = {}

        def writable(self):
            return True

        @property
        def encoding(self):
            return "utf-8"

        def isatty(self):
            return False

        def fileno(self):
            return self._fd

        def _line(self, tag, text):
            if tag is None:
                return text + "\n"
            return TAG_MARK + tag + " " + text + "\n"

        def write(self, s):
            if not isinstance(s, str):
                raise TypeError("write() argument must be str, not %s" % type(s).__name__)
            tag = _tag.get()
            with self._lock:
                buf = self._partial.pop(tag, "") + s
                lines = buf.split("\n")
                rest = lines.pop()
                if rest:
                    self._partial[tag] = rest
                if lines:
                    data = "".join(self._line(tag, l) for l in lines)
                    _write_all(self._fd, data.encode("utf-8", "replace"))
            return len(s)

        def end(self, tag):
            """Writes out the activation's unfinished line, if any."""
            with self._lock:
                rest = self._partial.pop(tag, None)
                if rest is not None:
                    _write_all(self._fd, self._line(tag, rest).encode("utf-8", "replace"))

        def flush(self):
            pass

    _flush()
    lock = threading.Lock()
    sys.stdout = _TaggedStream(1, lock)
    sys.stderr = _TaggedStream(2, lock)
    answers = threading.Lock()

    def answer(tag, obj):
        try:
            data = json.dumps(obj)
        except Exception as ex:
            data = json.dumps({"error": "The action returned a result that is not JSON: %s" % ex})
        with answers:
            _write_all(3, (tag + " " + data + "\n").encode("utf-8"))

    def handle(tag, msg):
        _tag.set(tag)
        try:
            res = fn(msg.get("value", {}))
            if not isinstance(res, (dict, list)):
                res = {"error": "The action did not return a dictionary."}
        except Exception as ex:
            traceback.print_exc()
            res = {"error": str(ex)}
        sys.stdout.end(tag)
        sys.stderr.end(tag)
        answer(tag, res)

    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            break
        tag, _, rest = line.decode("utf-8", "replace").partition(" ")
        try:
            msg = json.loads(rest)
            if not isinstance(msg, dict):
                raise ValueError("the message is not a JSON object")
        except Exception as ex:
            answer(tag, {"error": "The runtime sent an invalid message: %s" % ex})
            continue
        for key, val in msg.items():
            if key != "value":
                os.environ["__OW_" + key.upper()] = val if isinstance(val, str) else json.dumps(val)
        threading.Thread(target=handle, args=(tag, msg), daemon=True).start()


if __name__ == "__main__":
    main()
