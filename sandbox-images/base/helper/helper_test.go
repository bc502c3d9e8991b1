package main

// The test harness: a server on in-process pipes (or the real binary as a subprocess), a client
// that multiplexes requests over it, and git fixtures.

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	// The test binary doubles as the helper for the subprocess tests.
	if os.Getenv("DYTOOL_SUBPROCESS") == "1" {
		var args []string
		json.Unmarshal([]byte(os.Getenv("DYTOOL_ARGS")), &args)
		os.Exit(realMain(args, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

type resp struct {
	ID         int64           `json:"id"`
	OK         bool            `json:"ok"`
	Result     json.RawMessage `json:"result"`
	Error      *opError        `json:"error"`
	DurationMs int64           `json:"duration_ms"`
	Body       []byte          `json:"-"`
}

func (r resp) code() string {
	if r.Error == nil {
		return ""
	}
	return r.Error.Code
}

type client struct {
	t       testing.TB
	in      io.WriteCloser
	wmu     sync.Mutex
	mu      sync.Mutex
	pending map[int64]chan resp
	nextID  int64
	hello   resp
	exit    chan int
	srv     *server
	eof     chan struct{}
}

// newClient serves root in-process (walk: the openat fallback).
func newClient(t testing.TB, root string, walk bool) *client {
	t.Helper()
	r, err := openRoot(root, walk)
	if err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	srv := newServer(r, outW, testLog{t})
	c := &client{t: t, in: inW, pending: map[int64]chan resp{}, exit: make(chan int, 1), srv: srv, eof: make(chan struct{})}
	go func() {
		code := srv.serve(inR)
		c.exit <- code
		outW.Close()
	}()
	c.startReader(outR)
	t.Cleanup(func() {
		inW.Close()
		select {
		case <-c.exit:
		case <-time.After(10 * time.Second):
			t.Error("the server did not stop at EOF")
		}
		srv.wg.Wait()
	})
	return c
}

type testLog struct{ t testing.TB }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (c *client) startReader(out io.Reader) {
	first := make(chan resp, 1)
	go func() {
		defer close(c.eof)
		gotHello := false
		for {
			h, b, err := readFrame(out, kindResponse)
			if err != nil {
				return
			}
			var r resp
			if err := json.Unmarshal(h, &r); err != nil {
				c.t.Errorf("bad response header %q: %v", h, err)
				return
			}
			r.Body = b
			if !gotHello {
				gotHello = true
				first <- r
				continue
			}
			c.mu.Lock()
			ch := c.pending[r.ID]
			delete(c.pending, r.ID)
			c.mu.Unlock()
			if ch == nil {
				c.t.Errorf("an answer for id %d nobody asked for (or twice): %s", r.ID, h)
				continue
			}
			ch <- r
		}
	}()
	select {
	case c.hello = <-first:
	case <-time.After(10 * time.Second):
		c.t.Fatal("no hello")
	}
}

func (c *client) sendRaw(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.in.Write(b)
}

// start sends a request and returns its id and the channel its answer arrives on.
func (c *client) start(op string, args interface{}, body []byte, deadlineMs int64) (int64, chan resp) {
	id := atomic.AddInt64(&c.nextID, 1)
	ch := make(chan resp, 1)
	c.mu.Lock()
	c.pending[id] = ch
	c.mu.Unlock()
	h, err := json.Marshal(map[string]interface{}{"id": id, "op": op, "args": args, "deadline_ms": deadlineMs})
	if err != nil {
		c.t.Fatal(err)
	}
	c.wmu.Lock()
	err = writeFrame(c.in, kindRequest, h, body)
	c.wmu.Unlock()
	if err != nil {
		c.t.Fatal(err)
	}
	return id, ch
}

func (c *client) wait(ch chan resp) resp {
	c.t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		c.t.Fatal("no answer within 20 s")
	}
	return resp{}
}

func (c *client) call(op string, args interface{}, body []byte) resp {
	c.t.Helper()
	_, ch := c.start(op, args, body, 15000)
	return c.wait(ch)
}

// ok calls and decodes a successful result into out (may be nil).
func (c *client) ok(op string, args interface{}, body []byte, out interface{}) resp {
	c.t.Helper()
	r := c.call(op, args, body)
	if !r.OK {
		c.t.Fatalf("%s %v: %s %s %v", op, args, r.code(), r.Error.Message, r.Error.Details)
	}
	if out != nil {
		if err := json.Unmarshal(r.Result, out); err != nil {
			c.t.Fatal(err)
		}
	}
	return r
}

func (c *client) fail(op string, args interface{}, body []byte, code string) resp {
	c.t.Helper()
	r := c.call(op, args, body)
	if r.OK || r.code() != code {
		msg := ""
		if r.Error != nil {
			msg = r.Error.Message
		}
		c.t.Fatalf("%s %v: want %s, got ok=%v %s %s", op, args, code, r.OK, r.code(), msg)
	}
	return r
}

// bothModes runs f with openat2 and with the openat walk.
func bothModes(t *testing.T, f func(t *testing.T, walk bool)) {
	for _, walk := range []bool{false, true} {
		name := "openat2"
		if walk {
			name = "walk"
		}
		t.Run(name, func(t *testing.T) { f(t, walk) })
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t testing.TB, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// gitRepo makes a repository in a fresh temp dir with files committed; returns root and HEAD.
func gitRepo(t testing.TB, files map[string]string, force ...string) (string, string) {
	t.Helper()
	root := t.TempDir()
	run(t, root, "git", "init", "-q", "-b", "main", ".")
	for p, c := range files {
		writeFile(t, filepath.Join(root, p), c)
	}
	run(t, root, "git", "add", "-A", ".")
	for _, f := range force {
		run(t, root, "git", "add", "-f", "--", f)
	}
	run(t, root, "git", "commit", "-q", "-m", "base")
	return root, run(t, root, "git", "rev-parse", "HEAD")
}

func b64(v interface{}) string { b, _ := json.Marshal(v); return string(b) }
