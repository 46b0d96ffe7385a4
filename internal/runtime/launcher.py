"""Eddy's Python launcher: the actionloop child that the eddy runtime server
starts for the "python" launcher.

Usage: python3 launcher.py <action dir> [<main function name>]

It imports <action dir>/__main__.py as the module "main__", acknowledges on
fd 3 ({"ok": true}, or {"ok": false, "error": ...} with the traceback on
stderr when the import fails), then loops: read one JSON line from stdin
({"value": {...}, "activation_id": ..., ...}), export every key but "value"
as __OW_<KEY>, call main(value), flush stdout and stderr, and write the
result as one JSON line on fd 3.
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

    exported = set()
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
            os.environ[name] = val if isinstance(val, str) else json.dumps(val)
            seen.add(name)
        for name in exported - seen:
            os.environ.pop(name, None)
        exported = seen
        try:
            res = fn(msg.get("value", {}))
            if not isinstance(res, (dict, list)):
                res = {"error": "The action did not return a dictionary."}
        except Exception as ex:
            traceback.print_exc()
            res = {"error": str(ex)}
        answer(res)


if __name__ == "__main__":
    main()
