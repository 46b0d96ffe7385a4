package e2e

import (
	"context"
	"encoding/base64"

	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromium finds Debian's chromium. Without it the browser test is skipped,
// unless EDDY_REQUIRE_CHROMIUM=1 (CI installs it: .ci/run), which makes its
// absence a failure.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("EDDY_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("chromium is not installed and EDDY_REQUIRE_CHROMIUM=1 (apt-get install -y chromium)")
	}
	t.Skip("chromium is not installed (apt-get install -y chromium): the web view's browser test is skipped")
	return ""
}

// TestWebUIInBrowser loads the live view (/eddy/ui/) of a standalone in
// headless Chromium after invoking an action, and checks the page the
// browser rendered: the action's queue with its leader and its container,
// the invoker, and the activations with their breakdown bars. The page
// must refuse a request without the key.
func TestWebUIInBrowser(t *testing.T) {
	bin := chromium(t)
	// The action's container must outlive the browser's start on a busy
	// machine: it is idle from the last invocation on.
	e := startEddy(t, "process", "", "--container-idle-timeout", "10m")

	// Guarded: no key, or a wrong one, gets a Basic challenge.
	for _, auth := range []string{"", "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:wrong"} {
		code, hdr, _ := e.callAuth(auth, "GET", "/eddy/ui/", nil)
		if code != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") == "" {
			t.Fatalf("GET /eddy/ui/ with %q: %d, WWW-Authenticate %q; want 401 with a challenge", auth, code, hdr.Get("WWW-Authenticate"))
		}
	}

	e.createAction("seen", "python:3.11", "def main(a):\n    return {'ok': True}\n", nil)
	const invocations = 3
	for range invocations {
		e.mustCall(200, "POST", "/api/v1/namespaces/_/actions/seen?blocking=true", nil)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(guestAuth))
	queue := `tr.queue[data-action="guest/seen"]`
	err := chromedp.Do(bctx,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
				return err
			}
			_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}})
			return err
		}),
		chromedp.Navigate(e.URL+"/eddy/ui/"),
		chromedp.WaitVisible(queue+` td.containers`),
		chromedp.WaitVisible(`tr.activation .bar`),
	)
	if err != nil {
		t.Fatalf("the browser: %v", err)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll(`+"`"+sel+"`"+`).length`))
		if err != nil {
			t.Fatalf("counting %s: %v", sel, err)
		}
		return n
	}
	// The action's container shows as idle once its fetch comes back
	// empty (the invoker publishes it), as busy while a call runs.
	_, idleErr := chromedp.Run(bctx, chromedp.Poll[bool](`(() => { const q = document.querySelector('`+queue+` td.idle'); return q && q.textContent === '1'; })()`,
		chromedp.WithPollingTimeout(30*time.Second)))
	leader, followers, containers := text(queue+` td.leader`), text(queue+` td.followers`), text(queue+` td.containers`)
	idle, busy := text(queue+` td.idle`), text(queue+` td.busy`)
	activations, invokers := count(`tr.activation .bar`), count(`tr.invoker`)
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.TempDir(), "webui.png")
	if dir := os.Getenv("EDDY_UI_SCREENSHOT_DIR"); dir != "" {
		path = filepath.Join(dir, "webui.png")
	}
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes); queue leader %q followers %q containers %q (idle %q, busy %q)", path, len(shot), leader, followers, containers, idle, busy)
	if idleErr != nil || idle != "1" || busy != "0" {
		t.Errorf("guest/seen's container shown idle %q, busy %q (%v); want 1 idle, 0 busy after its calls", idle, busy, idleErr)
	}
	if leader != "scheduler0" {
		t.Errorf("queue leader shown %q, want scheduler0", leader)
	}
	if n, err := strconv.Atoi(containers); err != nil || n < 1 {
		t.Errorf("containers shown for guest/seen: %q, want ≥ 1 (the action ran %d times)", containers, invocations)
	}
	if activations != invocations {
		t.Errorf("activations shown with a breakdown bar: %d, want %d", activations, invocations)
	}
	if invokers != 1 {
		t.Errorf("invokers shown: %d, want 1", invokers)
	}
}
