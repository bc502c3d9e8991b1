package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestHelloAndPing(t *testing.T) {
	c := newClient(t, t.TempDir(), false)
	var h helloResult
	if err := json.Unmarshal(c.hello.Result, &h); err != nil || !c.hello.OK || c.hello.ID != 0 {
		t.Fatalf("hello: %+v %v", c.hello, err)
	}
	if h.Version != 1 || h.Pid != os.Getpid() || h.Confinement != "openat2" || !sort.StringsAreSorted(h.Ops) || len(h.Ops) != len(ops) {
		t.Fatalf("hello result %+v", h)
	}
	r := c.ok("ping", map[string]interface{}{}, nil, nil)
	if string(r.Result) != "{}" {
		t.Fatalf("ping result %s", r.Result)
	}
	w := newClient(t, t.TempDir(), true)
	json.Unmarshal(w.hello.Result, &h)
	if h.Confinement != "openat-walk" {
		t.Fatalf("walk mode says %q", h.Confinement)
	}
}

func TestBadRequests(t *testing.T) {
	c := newClient(t, t.TempDir(), false)
	r := c.fail("no_such_op", map[string]interface{}{}, nil, "unknown_op")
	if r.Error.Details["op"] != "no_such_op" {
		t.Fatal(r.Error.Details)
	}
	c.fail("read_file", map[string]interface{}{"path": "a", "start_line": 1, "numbered": false, "cap": 10, "bogus": 1}, nil, "invalid_request")
	c.fail("read_file", map[string]interface{}{"path": "a", "start_line": "1", "numbered": false, "cap": 10}, nil, "invalid_request")
	c.fail("read_file", map[string]interface{}{"path": "a", "numbered": false, "cap": 10}, nil, "invalid_request")
	c.fail("read_file", map[string]interface{}{"path": nil, "start_line": 1, "numbered": false, "cap": 10}, nil, "invalid_request")
	c.fail("read_file", map[string]interface{}{"path": "a", "start_line": 0, "numbered": false, "cap": 10}, nil, "invalid_request")
	_, ch := c.start("ping", map[string]interface{}{}, nil, 0)
	if r := c.wait(ch); r.code() != "invalid_request" {
		t.Fatalf("deadline 0: %+v", r)
	}
}

func TestSchema(t *testing.T) {
	c := newClient(t, t.TempDir(), false)
	var s schemaResult
	c.ok("schema", map[string]interface{}{}, nil, &s)
	want := map[string]string{
		"read_file.args.end_line":         "integer|null",
		"read_file.args.numbered":         "boolean",
		"read_file.result.content_sha256": "string",
		"write_file.args.executable":      "boolean|null",
		"write_file.result.before_sha256": "string|null",
		"list_directory.result.entries":   "array",
		"search.args.glob":                "string|null",
		"diff.result.sections":            "array",
		"read_blobs.args.shas":            "array",
		"cancel.args.id":                  "integer",
		"schema.result.ops":               "object",
		"move_file.args.from":             "string",
	}
	for k, v := range want {
		p := strings.Split(k, ".")
		o := s.Ops[p[0]]
		m := o.Args
		if p[1] == "result" {
			m = o.Result
		}
		if m[p[2]] != v {
			t.Errorf("%s: %q, want %q", k, m[p[2]], v)
		}
	}
	if len(s.Ops) != len(ops) {
		t.Errorf("%d ops in the schema", len(s.Ops))
	}
	var out bytes.Buffer
	realMain([]string{"schema"}, nil, &out, &out)
	var s2 schemaResult
	if err := json.Unmarshal(out.Bytes(), &s2); err != nil || len(s2.Ops) != len(ops) {
		t.Fatalf("schema command: %v %q", err, out.String())
	}
}

// hangingSearch: rg stuck opening a FIFO nobody writes to.
func hangingSearch(t *testing.T, root string) map[string]interface{} {
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	return map[string]interface{}{"path": "fifo", "pattern": "x", "glob": nil, "fixed_string": false,
		"case_sensitive": true, "max_results": 10, "max_text": 100}
}

func TestConcurrentOutOfOrderAndHang(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "a.txt"), "hello\n")
	c := newClient(t, root, false)
	t0 := time.Now()
	hangID, hang := c.start("search", hangingSearch(t, root), nil, 1500)
	var chans []chan resp
	for i := 0; i < 100; i++ {
		_, ch := c.start("ping", map[string]interface{}{}, nil, 5000)
		chans = append(chans, ch)
		_, ch = c.start("read_file", map[string]interface{}{"path": "a.txt", "start_line": 1, "end_line": nil, "numbered": false, "cap": 100}, nil, 5000)
		chans = append(chans, ch)
	}
	for _, ch := range chans {
		r := c.wait(ch)
		if !r.OK {
			t.Fatalf("%+v", r.Error)
		}
	}
	if time.Since(t0) > time.Second {
		t.Fatalf("the quick requests waited behind the hanging one (%v)", time.Since(t0))
	}
	select {
	case r := <-hang:
		t.Fatalf("the hanging search answered early: %+v", r)
	default:
	}
	r := c.wait(hang)
	el := time.Since(t0)
	if r.ID != hangID || r.code() != "timed_out" || el < 1400*time.Millisecond || el > 4*time.Second {
		t.Fatalf("hanging search: %+v after %v", r, el)
	}
	waitNoChildren(t, c.srv)
}

func waitNoChildren(t *testing.T, s *server) {
	t.Helper()
	for i := 0; i < 200 && s.kids.live() > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.kids.live(); n > 0 {
		t.Fatalf("%d children still alive", n)
	}
}

func TestCancel(t *testing.T) {
	root := t.TempDir()
	c := newClient(t, root, false)
	id, hang := c.start("search", hangingSearch(t, root), nil, 60000)
	time.Sleep(100 * time.Millisecond)
	var cr cancelResult
	c.ok("cancel", map[string]interface{}{"id": id}, nil, &cr)
	if !cr.Found {
		t.Fatal("cancel did not find the request")
	}
	if r := c.wait(hang); r.code() != "cancelled" {
		t.Fatalf("%+v", r)
	}
	waitNoChildren(t, c.srv)
	c.ok("cancel", map[string]interface{}{"id": id}, nil, &cr)
	if cr.Found {
		t.Fatal("a finished request was found")
	}
}

func TestQueueBeyond64(t *testing.T) {
	root := t.TempDir()
	c := newClient(t, root, false)
	args := hangingSearch(t, root)
	var hangs []chan resp
	for i := 0; i < maxConcurrent; i++ {
		_, ch := c.start("search", args, nil, 1000)
		hangs = append(hangs, ch)
	}
	time.Sleep(50 * time.Millisecond)
	// the 65th waits for a slot: it is answered only after the first ones time out
	t0 := time.Now()
	_, ping := c.start("ping", map[string]interface{}{}, nil, 10000)
	r := c.wait(ping)
	if !r.OK || time.Since(t0) < 700*time.Millisecond {
		t.Fatalf("the queued ping: %+v after %v", r, time.Since(t0))
	}
	// one whose deadline passes while it waits in line answers timed_out
	for _, ch := range hangs {
		if r := c.wait(ch); r.code() != "timed_out" {
			t.Fatalf("%+v", r)
		}
	}
	waitNoChildren(t, c.srv)
}

func TestTinyDeadlineOnBigSearch(t *testing.T) {
	files := map[string]string{}
	line := strings.Repeat("abcdefghij ", 100) + "\n"
	for i := 0; i < 60; i++ {
		files[fmt.Sprintf("d%d/f%d.txt", i%10, i)] = strings.Repeat(line, 60)
	}
	root, _ := gitRepo(t, files)
	c := newClient(t, root, false)
	_, ch := c.start("search", map[string]interface{}{"path": "", "pattern": `(\w+\s){3}zzz`, "glob": nil, "fixed_string": false,
		"case_sensitive": false, "max_results": 10, "max_text": 100}, nil, 3)
	_, p := c.start("ping", map[string]interface{}{}, nil, 5000)
	if r := c.wait(p); !r.OK {
		t.Fatal(r)
	}
	if r := c.wait(ch); r.code() != "timed_out" {
		t.Fatalf("%+v", r)
	}
	waitNoChildren(t, c.srv)
}

func TestProtocolErrorInProcess(t *testing.T) {
	c := newClient(t, t.TempDir(), false)
	got := make(chan resp, 1)
	c.mu.Lock()
	c.pending[0] = got
	c.mu.Unlock()
	go c.sendRaw([]byte("XY\x01\x01\x00\x00\x00\x02\x00\x00\x00\x00{}"))
	select {
	case code := <-c.exit:
		if code != 2 {
			t.Fatalf("exit %d", code)
		}
		c.exit <- code
	case <-time.After(5 * time.Second):
		t.Fatal("no exit")
	}
	if r := c.wait(got); r.ID != 0 || r.code() != "protocol_error" {
		t.Fatalf("%+v", r)
	}
}

// subprocess runs the test binary as the helper.
func subprocess(t *testing.T, args ...string) (*exec.Cmd, *os.File, *os.File) {
	a, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "DYTOOL_SUBPROCESS=1", "DYTOOL_ARGS="+string(a))
	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	inR.Close()
	outW.Close()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, inW, outR
}

func TestBadMagicExitsTwo(t *testing.T) {
	cmd, in, out := subprocess(t, "serve", "--root", t.TempDir())
	if _, _, err := readFrame(out, kindResponse); err != nil {
		t.Fatal(err)
	}
	in.Write([]byte("NOPE\x01\x00\x00\x00\x02\x00\x00\x00\x00{}"))
	h, _, err := readFrame(out, kindResponse)
	if err != nil {
		t.Fatal(err)
	}
	var r resp
	json.Unmarshal(h, &r)
	if r.ID != 0 || r.OK || r.code() != "protocol_error" {
		t.Fatalf("%s", h)
	}
	err = cmd.Wait()
	if cmd.ProcessState.ExitCode() != 2 {
		t.Fatalf("exit: %v", err)
	}
}

func TestEOFKillsChildrenAndExitsZero(t *testing.T) {
	root := t.TempDir()
	args := hangingSearch(t, root)
	marker := fmt.Sprintf("marker%d", time.Now().UnixNano())
	args["pattern"] = marker
	cmd, in, out := subprocess(t, "serve", "--root", root)
	readFrame(out, kindResponse)
	h, _ := json.Marshal(map[string]interface{}{"id": 1, "op": "search", "args": args, "deadline_ms": 60000})
	writeFrame(in, kindRequest, h, nil)
	deadline := time.Now().Add(5 * time.Second)
	for len(procsWith(marker)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("rg never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	in.Close()
	cmd.Wait()
	if cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("exit %d", cmd.ProcessState.ExitCode())
	}
	time.Sleep(100 * time.Millisecond)
	if p := procsWith(marker); len(p) > 0 {
		t.Fatalf("children survived stdin EOF: %v", p)
	}
}

func procsWith(s string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(b, []byte(s)) && !bytes.Contains(b, []byte("DYTOOL")) {
			st, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
			if !bytes.Contains(st, []byte(") Z ")) {
				out = append(out, e.Name())
			}
		}
	}
	return out
}

func TestKillCommand(t *testing.T) {
	marker := fmt.Sprintf("m%d", time.Now().UnixNano())
	cmd := exec.Command("sleep", "30")
	cmd.Env = append(os.Environ(), "DOCKYARD_EXEC="+marker)
	cmd.Start()
	other := exec.Command("sleep", "30")
	other.Env = append(os.Environ(), "DOCKYARD_EXEC="+marker+"x")
	other.Start()
	defer other.Process.Kill()
	var out bytes.Buffer
	realMain([]string{"kill", marker}, nil, &out, &out)
	if strings.TrimSpace(out.String()) != `{"killed":1}` {
		t.Fatalf("%q", out.String())
	}
	cmd.Wait()
	if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("%v", cmd.ProcessState)
	}
	out.Reset()
	realMain([]string{"version"}, nil, &out, &out)
	if strings.TrimSpace(out.String()) != `{"version":1}` {
		t.Fatal(out.String())
	}
}
