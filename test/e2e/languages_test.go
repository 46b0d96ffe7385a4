package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/eddy-faas/eddy/internal/container/docker"
	"github.com/eddy-faas/eddy/internal/runtime"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// langCase is one of OpenWhisk's other languages: a hello world that
// prints to stdout and stderr and uses its parameters, an action that
// fails (exception, panic), and a zip with a dependency.
type langCase struct {
	kind     string
	version  string // what the hello world's "version" starts with, if it says
	hello    string
	fail     string
	failWant string // the failing action's result "error"
	zip      func(t *testing.T) (code, main string)
}

const goHello = `package main

import (
	"fmt"
	"os"
)

func Main(args map[string]interface{}) map[string]interface{} {
	name, ok := args["name"].(string)
	if !ok {
		name = "stranger"
	}
	fmt.Println("hello", name)
	fmt.Fprintln(os.Stderr, "to stderr")
	n, _ := args["n"].(float64)
	return map[string]interface{}{"greeting": "Hello, " + name, "next": n + 1, "activation": os.Getenv("__OW_ACTIVATION_ID") != ""}
}
`

const phpHello = `<?php
function main(array $args): array {
    $name = $args["name"] ?? "stranger";
    echo "hello $name\n";
    fwrite(STDERR, "to stderr\n");
    return ["greeting" => "Hello, $name", "next" => ($args["n"] ?? 0) + 1, "activation" => getenv("__OW_ACTIVATION_ID") !== false];
}
`

const rubyHello = `def main(args)
  name = args["name"] || "stranger"
  puts "hello #{name}"
  STDERR.puts "to stderr"
  { "greeting" => "Hello, #{name}", "next" => (args["n"] || 0) + 1, "activation" => !ENV["__OW_ACTIVATION_ID"].nil? }
end
`

const javaHello = `import com.google.gson.JsonObject;

public class Main {
    public static JsonObject main(JsonObject args) {
        String name = args.has("name") ? args.get("name").getAsString() : "stranger";
        System.out.println("hello " + name);
        System.err.println("to stderr");
        JsonObject r = new JsonObject();
        r.addProperty("greeting", "Hello, " + name);
        r.addProperty("next", (args.has("n") ? args.get("n").getAsInt() : 0) + 1);
        r.addProperty("activation", System.getenv("__OW_ACTIVATION_ID") != null);
        return r;
    }
}
`

const pythonHello = `import os, platform, sys

def main(args):
    name = args.get("name", "stranger")
    print("hello", name)
    print("to stderr", file=sys.stderr)
    return {"greeting": "Hello, " + name, "next": args.get("n", 0) + 1, "activation": "__OW_ACTIVATION_ID" in os.environ,
            "version": platform.python_version()}
`

const nodejsHello = `function main(args) {
  const name = args.name || "stranger";
  console.log("hello " + name);
  console.error("to stderr");
  return {greeting: "Hello, " + name, next: (args.n || 0) + 1, activation: process.env.__OW_ACTIVATION_ID !== undefined, version: process.versions.node};
}
`

var langCases = []langCase{
	{
		kind: "python:3.13", version: "3.13.", hello: pythonHello,
		fail:     "def main(args):\n    raise Exception(\"boom\")\n",
		failWant: "boom",
		zip: func(t *testing.T) (string, string) {
			return zipOf(t, map[string]string{
				"__main__.py":         "from greeter import hello\n\ndef main(args):\n    return {\"greeting\": hello(args[\"name\"])}\n",
				"greeter/__init__.py": "def hello(n):\n    return \"Hello, \" + n\n",
			}), ""
		},
	},
	{
		kind: "nodejs:20", version: "20.", hello: nodejsHello,
		fail:     "function main(args) {\n  throw new Error(\"boom\");\n}\n",
		failWant: "Error: boom",
		zip: func(t *testing.T) (string, string) {
			return zipOf(t, map[string]string{
				"package.json":                  `{"name": "action", "main": "action.js"}`,
				"action.js":                     "const greeter = require(\"greeter\");\nexports.main = args => ({greeting: greeter.hello(args.name)});\n",
				"node_modules/greeter/index.js": "exports.hello = n => \"Hello, \" + n;\n",
			}), ""
		},
	},
	{
		kind: "go:1.19", hello: goHello,
		fail:     "package main\n\nfunc Main(args map[string]interface{}) map[string]interface{} {\n\tpanic(\"boom\")\n}\n",
		failWant: "panic: boom",
		zip:      goVendorZip,
	},
	{
		kind: "php:8.2", hello: phpHello,
		fail:     "<?php\nfunction main(array $args): array {\n    throw new Exception(\"boom\");\n}\n",
		failWant: "An error occurred running the action.",
		zip: func(t *testing.T) (string, string) {
			return zipOf(t, map[string]string{
				"index.php": "<?php\nuse Acme\\Greeter;\nfunction main(array $args): array {\n    return [\"greeting\" => Greeter::hello($args[\"name\"])];\n}\n",
				"vendor/autoload.php": "<?php\nspl_autoload_register(function ($class) {\n    $f = __DIR__ . '/acme/greeter/src/' . basename(str_replace('\\\\', '/', $class)) . '.php';\n" +
					"    if (file_exists($f)) { require $f; }\n});\n",
				"vendor/acme/greeter/src/Greeter.php": "<?php\nnamespace Acme;\nclass Greeter {\n    public static function hello($n) { return \"Hello, $n\"; }\n}\n",
			}), ""
		},
	},
	{
		kind: "ruby:3.1", hello: rubyHello,
		fail:     "def main(args)\n  raise \"boom\"\nend\n",
		failWant: "boom",
		zip: func(t *testing.T) (string, string) {
			return zipOf(t, map[string]string{
				"main.rb": "require \"greeter\"\n\ndef main(args)\n  { \"greeting\" => Greeter.hello(args[\"name\"]) }\nend\n",
				"vendor/bundle/ruby/3.1.0/gems/greeter-1.0.0/lib/greeter.rb": "module Greeter\n  def self.hello(n)\n    \"Hello, #{n}\"\n  end\nend\n",
			}), ""
		},
	},
	{
		kind: "java:17", hello: javaHello,
		fail:     "import com.google.gson.JsonObject;\n\npublic class Main {\n    public static JsonObject main(JsonObject args) {\n        throw new IllegalStateException(\"boom\");\n    }\n}\n",
		failWant: "boom",
		zip:      javaJar,
	},
}

// TestLanguages drives each of OpenWhisk's other languages, and the newer
// python and nodejs of Debian trixie, through Eddy on Docker: hello world with parameters and logs, a failing action, a zip
// with a dependency (and, for Go, a precompiled executable).
func TestLanguages(t *testing.T) {
	dockerOnly(t)
	e := startEddy(t, "docker", "")
	for _, lc := range langCases {
		base := strings.Split(lc.kind, ":")[0]
		if lc.kind == "python:3.13" || lc.kind == "nodejs:20" {
			base += "-next" // not the family's default
		}
		t.Run(base, func(t *testing.T) {
			e.t = t

			// Hello world: parameters in, logs out; the second call is warm.
			e.createAction(base+"-hello", lc.kind, lc.hello, nil)
			for i, name := range []string{"Eddy", "Ada"} {
				rec := e.invokeRecord(base+"-hello", map[string]any{"name": name, "n": 1}, 200)
				var res map[string]any
				_ = json.Unmarshal(rec.Response.Result, &res)
				if res["greeting"] != "Hello, "+name || res["next"] != 2.0 || res["activation"] != true {
					t.Fatalf("call %d: result %s", i, rec.Response.Result)
				}
				if v, _ := res["version"].(string); lc.version != "" && !strings.HasPrefix(v, lc.version) {
					t.Fatalf("call %d: %s runs version %q, want %s*", i, lc.kind, v, lc.version)
				}
				logs := strings.Join(rec.Logs, "\n")
				if !strings.Contains(logs, "stdout: hello "+name) || !strings.Contains(logs, "stderr: to stderr") {
					t.Fatalf("call %d: logs %q", i, rec.Logs)
				}
				if strings.Contains(logs, "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX") || strings.Count(logs, "to stderr") != 1 {
					t.Fatalf("call %d: logs of one activation %q", i, rec.Logs)
				}
			}
			// The "default" alias resolves to the kind (the new families'
			// only kind); no parameters.
			family := strings.Split(lc.kind, ":")[0]
			defKind := family + ":default"
			if strings.HasSuffix(base, "-next") {
				defKind = lc.kind
			}
			e.createAction(base+"-default", defKind, lc.hello, nil)
			out := e.mustCall(200, "GET", "/api/v1/namespaces/_/actions/"+base+"-default", nil)
			if !strings.Contains(string(out), `"kind":"`+lc.kind+`"`) && defKind != lc.kind {
				t.Fatalf("%s stored as %s", defKind, out)
			}
			res := e.mustCall(200, "POST", "/api/v1/namespaces/_/actions/"+base+"-default?blocking=true&result=true", map[string]any{})
			if !strings.Contains(string(res), `"greeting":"Hello, stranger"`) {
				t.Fatalf("no parameters: %s", res)
			}

			// An exception is the activation's error.
			e.createAction(base+"-fail", lc.kind, lc.fail, nil)
			rec := e.invokeRecord(base+"-fail", map[string]any{}, 502)
			var failed map[string]any
			_ = json.Unmarshal(rec.Response.Result, &failed)
			if rec.Response.Status != "application error" || failed["error"] != lc.failWant {
				t.Fatalf("failing action: %s %s", rec.Response.Status, rec.Response.Result)
			}
			if !strings.Contains(strings.Join(rec.Logs, "\n"), "boom") {
				t.Fatalf("the failure is not in the logs: %q", rec.Logs)
			}

			// A zip with a dependency.
			code, main := lc.zip(t)
			exe := map[string]any{"kind": lc.kind, "code": code, "binary": true}
			if main != "" {
				exe["main"] = main
			}
			e.mustCall(200, "PUT", "/api/v1/namespaces/_/actions/"+base+"-zip", map[string]any{"exec": exe})
			res = e.mustCall(200, "POST", "/api/v1/namespaces/_/actions/"+base+"-zip?blocking=true&result=true", map[string]any{"name": "zip"})
			if !strings.Contains(string(res), `"greeting":"Hello, zip"`) {
				t.Fatalf("zip: %s", res)
			}
		})
	}
	e.t = t
}

// TestGoPrecompiledAndCompileError: the go kind runs an executable built
// elsewhere (a zip with "exec", as upstream's Go runtime accepts), and a
// source that does not compile fails /init with the compiler's message.
func TestGoPrecompiledAndCompileError(t *testing.T) {
	dockerOnly(t)
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH")
	}
	dir := t.TempDir()
	for name, body := range map[string]string{
		"main.go":   strings.Replace(goHello, "\"Hello, \"", "\"Precompiled, \"", 1),
		"main__.go": string(runtime.GoLauncherSource()),
		"go.mod":    "module exec\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(goTool, "build", "-o", "exec", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goruntime.GOARCH, "GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "exec"))
	if err != nil {
		t.Fatal(err)
	}
	e := startEddy(t, "docker", "")
	// As a zip with exec, and as the bare binary.
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/actions/pre-zip", map[string]any{"exec": map[string]any{
		"kind": "go:1.19", "binary": true, "code": zipOf(t, map[string]string{"exec": string(bin)})}})
	e.mustCall(200, "PUT", "/api/v1/namespaces/_/actions/pre-bin", map[string]any{"exec": map[string]any{
		"kind": "go:1.19", "binary": true, "code": base64.StdEncoding.EncodeToString(bin)}})
	for _, name := range []string{"pre-zip", "pre-bin"} {
		rec := e.invokeRecord(name, map[string]any{"name": "Bin", "n": 1}, 200)
		if !strings.Contains(string(rec.Response.Result), `"greeting":"Precompiled, Bin"`) ||
			!strings.Contains(strings.Join(rec.Logs, "\n"), "stdout: hello Bin") {
			t.Fatalf("%s: %s %q", name, rec.Response.Result, rec.Logs)
		}
	}
	e.createAction("broken", "go:1.19", "package main\n\nfunc Main(args map[string]interface{}) map[string]interface{} {\n\treturn undefinedThing\n}\n", nil)
	rec := e.invokeRecord("broken", map[string]any{}, 502)
	if rec.Response.Status != "action developer error" || !strings.Contains(string(rec.Response.Result), "undefined: undefinedThing") {
		t.Fatalf("compile error: %s %s", rec.Response.Status, rec.Response.Result)
	}
}

// invokeRecord invokes name blocking and returns its record, checking the status.
func (e *eddy) invokeRecord(name string, params map[string]any, want int) whisk.Activation {
	e.t.Helper()
	out := e.mustCall(want, "POST", "/api/v1/namespaces/_/actions/"+name+"?blocking=true", params)
	var rec whisk.Activation
	if err := json.Unmarshal(out, &rec); err != nil {
		e.t.Fatalf("record %s: %v", out, err)
	}
	if len(rec.Logs) == 0 && rec.ActivationID != "" {
		// The blocking answer may precede the stored logs.
		rec = e.activation(string(rec.ActivationID))
	}
	return rec
}

// zipOf returns the base64 of a zip holding files.
func zipOf(t *testing.T, files map[string]string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "a.zip")
	writeZip(t, path, files)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// goVendorZip is a Go module whose dependency is vendored (go mod vendor).
func goVendorZip(t *testing.T) (string, string) {
	return zipOf(t, map[string]string{
		"go.mod":                            "module exec\n\ngo 1.19\n\nrequire example.com/greet v1.0.0\n",
		"main.go":                           "package main\n\nimport \"example.com/greet\"\n\nfunc Main(args map[string]interface{}) map[string]interface{} {\n\tname, _ := args[\"name\"].(string)\n\treturn map[string]interface{}{\"greeting\": greet.Hello(name)}\n}\n",
		"vendor/modules.txt":                "# example.com/greet v1.0.0\n## explicit; go 1.19\nexample.com/greet\n",
		"vendor/example.com/greet/greet.go": "package greet\n\n// Hello greets.\nfunc Hello(name string) string { return \"Hello, \" + name }\n",
	}), ""
}

// javaJar compiles, in the java image itself, a class that uses a
// dependency and returns a jar of it with the dependency's jar inside
// (lib/greeter.jar).
func javaJar(t *testing.T) (string, string) {
	t.Helper()
	script := `set -e
mkdir -p /w/dep /w/act/lib && cd /w
cat > Greeter.java <<'EOS'
package com.example.greet;
public class Greeter { public static String hello(String n) { return "Hello, " + n; } }
EOS
cat > Hello.java <<'EOS'
package com.example;
import com.google.gson.JsonObject;
import com.example.greet.Greeter;
public class Hello {
    public static JsonObject main(JsonObject args) {
        JsonObject r = new JsonObject();
        r.addProperty("greeting", Greeter.hello(args.get("name").getAsString()));
        return r;
    }
}
EOS
javac -d dep Greeter.java
jar cf act/lib/greeter.jar -C dep .
javac -cp /usr/share/java/gson.jar:act/lib/greeter.jar -d act Hello.java
jar cf action.jar -C act .
base64 -w0 action.jar
`
	return runInImage(t, "eddy/action-java:17", script), "com.example.Hello"
}

// runInImage runs a shell script in a container of image and returns its
// standard output.
func runInImage(t *testing.T, image, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cli, err := docker.Dial(ctx, "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: image, Entrypoint: []string{"/bin/sh", "-c", script}}, nil, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	waitC, errC := cli.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
	var code int64
	select {
	case w := <-waitC:
		code = w.StatusCode
	case err := <-errC:
		t.Fatal(err)
	}
	rc, err := cli.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, rc); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if code != 0 {
		t.Fatalf("script in %s exited %d: %s", image, code, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}
