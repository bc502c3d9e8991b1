package main

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExecLogOneLinePerCallNeverContents(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "log")
	outR, outW := io.Pipe()
	go runLogd(fifo, outW, io.Discard)
	lines := bufio.NewScanner(outR)
	if !lines.Scan() || !strings.Contains(lines.Text(), "logd: box started") {
		t.Fatalf("first line: %q", lines.Text())
	}
	c := newClient(t, t.TempDir(), false)
	c.srv.execLog = openExecLog(fifo)
	if c.srv.execLog == nil {
		t.Fatal("the FIFO did not open")
	}
	c.ok("write_file", map[string]interface{}{"path": "a b.txt", "executable": nil}, []byte("secret-content\n"), nil)
	c.ok("ping", map[string]interface{}{}, nil, nil) // upkeep: no line
	c.fail("read_file", map[string]interface{}{"path": "nope", "start_line": 1, "end_line": nil, "numbered": false, "cap": 100}, nil, "file_not_found")
	c.ok("note", map[string]interface{}{"line": "exec action=lint.files exit=0\nforged line"}, nil, nil)
	got := make(chan []string, 1)
	go func() {
		var out []string
		for len(out) < 3 && lines.Scan() {
			out = append(out, lines.Text())
		}
		got <- out
	}()
	var out []string
	select {
	case out = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no log lines")
	}
	if len(out) != 3 {
		t.Fatalf("lines: %q", out)
	}
	w, r, n := out[0], out[1], out[2]
	for _, want := range []string{"req=1 ", "op=write_file", `path="a b.txt"`, "outcome=ok", "in=15", "ms="} {
		if !strings.Contains(w, want) {
			t.Errorf("write line %q lacks %q", w, want)
		}
	}
	if !strings.Contains(r, "op=read_file") || !strings.Contains(r, "outcome=file_not_found") {
		t.Errorf("read line %q", r)
	}
	if !strings.Contains(n, "exec action=lint.files exit=0 forged line") {
		t.Errorf("a note is one line, its newlines flattened: %q", n)
	}
	for _, l := range out {
		if strings.Contains(l, "secret-content") {
			t.Fatalf("file contents in the log: %q", l)
		}
	}
	_ = os.Remove(fifo)
}
