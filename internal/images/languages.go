package images

import (
	"strings"

	"github.com/eddy-faas/eddy/internal/runtime"
)

// OpenWhisk's other languages, each a Debian root file system with the
// language's packages plus the runtime server (launchers go, php, ruby and
// java of internal/runtime):
//
//   - eddy/action-go:<major.minor>: golang-go (Debian's default Go, 1.19
//     on bookworm); /init compiles source with a build cache warmed when
//     the image is built (GOCACHE=/var/cache/eddy-go);
//   - eddy/action-php:<major.minor>: php-cli and php-mbstring;
//   - eddy/action-ruby:<major.minor>: ruby;
//   - eddy/action-java:<major>: openjdk-17-jdk-headless (javac for source
//     actions and for EddyLauncher, compiled when the image is built) and
//     libgoogle-gson-java (Gson, OpenWhisk's JSON types for Java);
//
// and the newer python and nodejs of Debian trixie as
// eddy/action-python:3.13 and eddy/action-nodejs:20 (families python-next
// and nodejs-next, on eddy/rootfs-python-next:trixie and
// eddy/rootfs-nodejs-next:trixie).
const (
	GoRepo   = "eddy/action-go"
	PHPRepo  = "eddy/action-php"
	RubyRepo = "eddy/action-ruby"
	JavaRepo = "eddy/action-java"

	// PythonNext and NodejsNext are the newer python and nodejs of Debian's
	// next release (NextSuite): python3 3.13 and nodejs 20 in trixie, as
	// eddy/action-python:3.13 and eddy/action-nodejs:20 (bookworm and its
	// backports have no newer ones).
	PythonNext = "python-next"
	NodejsNext = "nodejs-next"
	// NextSuite is the Debian release of PythonNext and NodejsNext.
	NextSuite = "trixie"

	Go   = "go"
	PHP  = "php"
	Ruby = "ruby"
	Java = "java"
)

// kindFamily is the family of the kinds the image serves (python for
// python-next).
func (s rootfsSpec) kindFamily() string { return strings.TrimSuffix(s.family, "-next") }

// suite is the Debian release a family's root file system comes from.
func (b *builder) suite(s rootfsSpec) string {
	if s.suite != "" {
		return s.suite
	}
	return b.opts.Suite
}

// javaLauncherDir is where the java image keeps EddyLauncher.
const javaLauncherDir = "/usr/lib/eddy/java"

// goWarm is a Go action compiled when the go image is built, so that the
// build cache holds what every action's launcher needs.
const goWarm = `package main

func Main(args map[string]interface{}) map[string]interface{} { return args }
`

// languageSpecs are the families of OpenWhisk's other languages.
func languageSpecs() map[string]rootfsSpec {
	return map[string]rootfsSpec{
		PythonNext: {
			family: PythonNext, suite: NextSuite, repo: PythonRepo, packages: []string{"python3"}, pkg: "python3",
			tag: majorMinor, env: []string{"EDDY_LAUNCHER=python", "EDDY_PYTHON=python3"},
		},
		NodejsNext: {
			family: NodejsNext, suite: NextSuite, repo: NodejsRepo, packages: []string{"nodejs"}, pkg: "nodejs",
			tag: major, env: []string{"EDDY_LAUNCHER=nodejs", "EDDY_NODE=node"},
		},
		Go: {
			family: Go, repo: GoRepo, packages: []string{"golang-go", "ca-certificates"}, pkg: "golang-go",
			tag: majorMinor,
			env: []string{"EDDY_LAUNCHER=go", "EDDY_GO=go", "OW_WAIT_FOR_ACK=1",
				"GOCACHE=/var/cache/eddy-go", "GOPATH=/var/lib/eddy-go", "CGO_ENABLED=0"},
			files: []File{
				{Name: "rootfs/usr/lib/eddy/go-warm/main.go", Mode: 0o644, Body: []byte(goWarm)},
				{Name: "rootfs/usr/lib/eddy/go-warm/main__.go", Mode: 0o644, Body: runtime.GoLauncherSource()},
				{Name: "rootfs/usr/lib/eddy/go-warm/go.mod", Mode: 0o644, Body: []byte("module exec\n")},
			},
			// The flags are /init's (internal/runtime/launcher_go.go), so
			// that the cached packages are the ones /init asks for.
			steps: []string{
				"RUN cd /usr/lib/eddy/go-warm && GOCACHE=/var/cache/eddy-go GOPATH=/var/lib/eddy-go CGO_ENABLED=0 GOPROXY=off go build -mod=mod -ldflags '-s -w' -o /tmp/warm . && rm -rf /usr/lib/eddy/go-warm /tmp/warm && chmod -R a+rwX /var/cache/eddy-go",
			},
		},
		PHP: {
			family: PHP, repo: PHPRepo, packages: []string{"php-cli", "php-mbstring"}, pkg: "php-cli",
			tag: majorMinor, env: []string{"EDDY_LAUNCHER=php", "EDDY_PHP=php"},
		},
		Ruby: {
			family: Ruby, repo: RubyRepo, packages: []string{"ruby"}, pkg: "ruby",
			tag: majorMinor, env: []string{"EDDY_LAUNCHER=ruby", "EDDY_RUBY=ruby"},
		},
		Java: {
			family: Java, repo: JavaRepo, packages: []string{"openjdk-17-jdk-headless", "libgoogle-gson-java"},
			pkg: "openjdk-17-jdk-headless", tag: major,
			env:   []string{"EDDY_LAUNCHER=java", "EDDY_JAVA=java", "EDDY_GSON=" + "/usr/share/java/gson.jar", "EDDY_JAVA_LAUNCHER=" + javaLauncherDir},
			files: []File{{Name: "rootfs" + javaLauncherDir + "/EddyLauncher.java", Mode: 0o644, Body: runtime.JavaLauncherSource()}},
			// javac at build time; -Xshare:dump refreshes the JVM's class
			// data archive for faster starts.
			steps: []string{
				"RUN javac -encoding UTF-8 -cp /usr/share/java/gson.jar -d " + javaLauncherDir + " " + javaLauncherDir + "/EddyLauncher.java && (java -Xshare:dump >/dev/null 2>&1 || true)",
			},
		},
	}
}
