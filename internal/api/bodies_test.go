package api

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eddy-faas/eddy/internal/bus/memory"
	"github.com/eddy-faas/eddy/internal/manifest"
	"github.com/eddy-faas/eddy/internal/store/sqlite"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// slowBody sends size bytes of an action PUT: all but the last byte at
// once, the last when release is closed.
type slowBody struct {
	r       io.Reader
	last    bool
	release chan struct{}
}

func (b *slowBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF && !b.last {
		<-b.release
		b.last = true
		p[0] = '}'
		return 1, nil
	}
	return n, err
}

// A large body holds its size of the body budget until it is answered:
// a second one waits for it, and both are served; small bodies never wait.
func TestLargeBodiesShareABudget(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "eddy.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.PutIdentity(ctx, whisk.Identity{Subject: "guest", Namespace: "guest", UUID: whisk.GuestUUID, Key: whisk.GuestKey}); err != nil {
		t.Fatal(err)
	}
	code := strings.Repeat("#", 200<<10)
	doc := `{"exec":{"kind":"python:3.11","code":"` + code + `"}`
	h := newHandler(t, Config{BodyBudget: int64(len(doc) + 1)}, Deps{
		Store: st, Invoker: &fakeInvoker{}, Runtimes: manifest.Default(), Topics: memory.New(nil),
	})
	s := h.(*server)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	put := func(name string, body io.Reader) (int, error) {
		req, err := http.NewRequest(http.MethodPut, srv.URL+"/api/v1/namespaces/_/actions/"+name, body)
		if err != nil {
			return 0, err
		}
		req.ContentLength = int64(len(doc) + 1)
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(whisk.GuestUUID, whisk.GuestKey)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer res.Body.Close()
		_, _ = io.Copy(io.Discard, res.Body)
		return res.StatusCode, nil
	}
	first := &slowBody{r: strings.NewReader(doc), release: make(chan struct{})}
	firstDone := make(chan int, 1)
	go func() {
		st, err := put("a", first)
		if err != nil {
			t.Error(err)
		}
		firstDone <- st
	}()
	// The first request holds the whole budget while its body is open.
	for s.bodies.TryAcquire(1) {
		s.bodies.Release(1)
		time.Sleep(time.Millisecond)
	}
	secondDone := make(chan int, 1)
	go func() {
		st, err := put("b", strings.NewReader(doc+"}"))
		if err != nil {
			t.Error(err)
		}
		secondDone <- st
	}()
	// Small bodies do not wait for the budget.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/namespaces/_/actions/nothing", strings.NewReader(`{}`))
	req.SetBasicAuth(whisk.GuestUUID, whisk.GuestKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("small invoke: status %d, want 404 (not held by the budget)", res.StatusCode)
	}
	select {
	case st := <-secondDone:
		t.Fatalf("the second large body was served (%d) while the first held the budget", st)
	default:
	}
	close(first.release)
	for i, c := range []chan int{firstDone, secondDone} {
		if st := <-c; st != http.StatusOK {
			t.Fatalf("PUT %d: status %d, want 200", i+1, st)
		}
	}
	// Given back once each handler returned (a client may read a large
	// answer before its handler's deferred release).
	for !s.bodies.TryAcquire(s.bodyBudget) {
		time.Sleep(time.Millisecond)
	}
	if got := strconv.Itoa(int(s.bodyCost(&http.Request{Method: http.MethodGet, ContentLength: -1}))); got != "0" {
		t.Fatalf("a GET without a body costs %s, want 0", got)
	}
}
