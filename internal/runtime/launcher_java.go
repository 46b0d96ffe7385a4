package runtime

import (
	"bytes"
	_ "embed"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

//go:embed EddyLauncher.java
var javaLauncherSource []byte

// JavaLauncherSource is EddyLauncher.java, which the eddy/action-java image
// compiles when it is built (its directory is $EDDY_JAVA_LAUNCHER there).
func JavaLauncherSource() []byte { return bytes.Clone(javaLauncherSource) }

// javaLauncherT runs Java as OpenWhisk's Java runtime does: the code is a
// jar (base64, binary) holding a class with
// public static JsonObject main(JsonObject args) (Gson's types), named by
// init's "main": "Main" when it is "main" or empty, else a class name,
// optionally with "#method". The jar is extracted into the action
// directory, which goes on the class path with every jar inside it (so a
// zip of classes and lib/*.jar works too). Code that is not a zip is
// taken as Java source of that class and compiled with javac, as
// upstream's actionloop Java runtime does. The JVM is $EDDY_JAVA (default
// java), Gson $EDDY_GSON (default Debian's /usr/share/java/gson.jar), the
// compiled EddyLauncher the directory $EDDY_JAVA_LAUNCHER, else it is
// compiled into the work directory at /init (needs javac).
type javaLauncherT struct{}

const defaultGson = "/usr/share/java/gson.jar"

func (javaLauncherT) prepare(workDir string, req *initValue, env func(string) string) (*command, error) {
	spec := req.Main
	if spec == "" || spec == "main" {
		spec = "Main"
	}
	className, _, _ := strings.Cut(spec, "#")
	dir := filepath.Join(workDir, "action")
	simple := className[strings.LastIndex(className, ".")+1:]
	isZip, err := actionFiles(dir, req, simple+".java", 0o644)
	if err != nil {
		return nil, err
	}
	gson := valueOr(env("EDDY_GSON"), defaultGson)
	javac := valueOr(env("EDDY_JAVAC"), "javac")
	if !isZip {
		if err := runJavac(javac, dir, gson, []string{filepath.Join(dir, simple+".java")}); err != nil {
			return nil, err
		}
	}
	launcherDir := env("EDDY_JAVA_LAUNCHER")
	if launcherDir == "" || !isFile(filepath.Join(launcherDir, "EddyLauncher.class")) {
		launcherDir = filepath.Join(workDir, "launcher")
		if err := os.MkdirAll(launcherDir, 0o755); err != nil {
			return nil, err
		}
		src := filepath.Join(launcherDir, "EddyLauncher.java")
		if err := os.WriteFile(src, javaLauncherSource, 0o644); err != nil {
			return nil, err
		}
		if err := runJavac(javac, launcherDir, gson, []string{src}); err != nil {
			return nil, err
		}
	}
	cp := []string{launcherDir, gson, dir}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".jar") {
			cp = append(cp, p)
		}
		return nil
	})
	return &command{
		path: valueOr(env("EDDY_JAVA"), "java"),
		args: []string{
			"-Dfile.encoding=UTF-8", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto",
			"--add-opens", "java.base/java.util=ALL-UNNAMED",
			"-cp", strings.Join(cp, string(os.PathListSeparator)), "EddyLauncher", spec,
		},
		dir:     dir,
		waitAck: true,
	}, nil
}

// runJavac compiles sources into dir; a compile error fails /init with 502
// and javac's output as the error (also in the logs).
func runJavac(javac, dir, gson string, sources []string) error {
	args := append([]string{"-encoding", "UTF-8", "-nowarn", "-cp", gson + string(os.PathListSeparator) + dir, "-d", dir}, sources...)
	out, err := exec.Command(javac, args...).CombinedOutput()
	if err == nil {
		return nil
	}
	text := strings.TrimSpace(string(out))
	if text == "" {
		text = "javac: " + err.Error()
	}
	return &initError{status: 502, msg: text, detail: text}
}

func isFile(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
