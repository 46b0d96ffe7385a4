package bench

// The benchmark actions of OpenWhisk's other languages (the go, php, ruby
// and java kinds of the built-in manifest): the same no-op and 100 ms
// sleep as the interpreted kinds, sent as source. The go and java kinds
// compile source at /init (go build, javac), so their cold starts include
// the compiler: Eddy's figure and its floor alike.
var otherLanguages = map[string]actionCodes{
	"python:3.13": interpreted["python:3.11"],
	"nodejs:20":   interpreted["nodejs:18"],
	"go:1.19": {
		noop: "package main\n\nimport \"os\"\n\nvar id = map[string]interface{}{\"pid\": os.Getpid(), \"host\": hostname()}\n\n" +
			"func hostname() string { h, _ := os.Hostname(); return h }\n\n" +
			"func Main(args map[string]interface{}) map[string]interface{} { return id }\n",
		sleep: "package main\n\nimport (\n\t\"os\"\n\t\"time\"\n)\n\nvar id = map[string]interface{}{\"pid\": os.Getpid(), \"host\": hostname()}\n\n" +
			"func hostname() string { h, _ := os.Hostname(); return h }\n\n" +
			"func Main(args map[string]interface{}) map[string]interface{} {\n\ttime.Sleep(100 * time.Millisecond)\n\treturn id\n}\n",
	},
	"php:8.2": {
		noop:  "<?php\n$GLOBALS['eddy_id'] = ['pid' => getmypid(), 'host' => gethostname()];\nfunction main(array $args): array { return $GLOBALS['eddy_id']; }\n",
		sleep: "<?php\n$GLOBALS['eddy_id'] = ['pid' => getmypid(), 'host' => gethostname()];\nfunction main(array $args): array { usleep(100000); return $GLOBALS['eddy_id']; }\n",
	},
	"ruby:3.1": {
		noop:  "require \"socket\"\nID = { \"pid\" => Process.pid, \"host\" => Socket.gethostname }\n\ndef main(args)\n  ID\nend\n",
		sleep: "require \"socket\"\nID = { \"pid\" => Process.pid, \"host\" => Socket.gethostname }\n\ndef main(args)\n  sleep(0.1)\n  ID\nend\n",
	},
	"java:17": {
		noop:  javaBench(""),
		sleep: javaBench("        try { Thread.sleep(100); } catch (InterruptedException e) { }\n"),
	},
}

func javaBench(body string) string {
	return "import com.google.gson.JsonObject;\n\npublic class Main {\n" +
		"    private static final JsonObject ID = new JsonObject();\n" +
		"    static {\n        ID.addProperty(\"pid\", ProcessHandle.current().pid());\n" +
		"        String h;\n        try { h = java.net.InetAddress.getLocalHost().getHostName(); } catch (Exception e) { h = \"\"; }\n" +
		"        ID.addProperty(\"host\", h);\n    }\n\n" +
		"    public static JsonObject main(JsonObject args) {\n" + body + "        return ID;\n    }\n}\n"
}
