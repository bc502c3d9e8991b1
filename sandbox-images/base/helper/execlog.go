package main

// The box's own log. A job box's main process is `dockyard-tool logd`: it makes a FIFO in the
// box's private /tmp and copies every line written to it onto its stdout, which is the box's log
// stream (`docker logs`, the engine's logging drivers, GET /v1/jobs/{id}/logs). The serving helper
// writes ONE line per call it answers — time, request id, op, the paths it named, outcome, duration,
// bytes — never file contents; the service adds a line per plain exec through the `note` op.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	logFifo    = "/tmp/.dockyard-log"
	maxLogLine = 4000 // under PIPE_BUF (4096): one write is one whole line, never interleaved
)

// runLogd is the box's main process: it never exits on its own (the box lives as long as it does).
func runLogd(path string, out io.Writer, errw io.Writer) int {
	_ = os.Remove(path)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		fmt.Fprintf(errw, "dockyard-tool logd: cannot make %s: %v; the box keeps no exec log\n", path, err)
		select {} // still the box's main process
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0) // read+write: never EOF as writers come and go
	if err != nil {
		fmt.Fprintf(errw, "dockyard-tool logd: cannot open %s: %v; the box keeps no exec log\n", path, err)
		select {}
	}
	fmt.Fprintf(out, "%s dockyard-tool logd: box started, exec log at %s\n", stamp(time.Now()), path)
	r := bufio.NewReaderSize(f, maxLogLine+96)
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 {
			if line[len(line)-1] != '\n' { // over the buffer: cut it, drop the rest of that line
				line = append(append([]byte{}, line...), '\n')
				for err == bufio.ErrBufferFull {
					_, err = r.ReadSlice('\n')
				}
			}
			_, _ = out.Write(line)
		}
		if err != nil && err != bufio.ErrBufferFull {
			fmt.Fprintf(errw, "dockyard-tool logd: reading %s: %v\n", path, err)
			select {}
		}
	}
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// execLog is the serving helper's end of the FIFO (nil outside a job box: nothing is logged).
type execLog struct {
	mu sync.Mutex
	f  *os.File
}

func openExecLog(path string) *execLog {
	// Non-blocking: a FIFO nobody reads (no logd) fails here, and a full pipe drops a line
	// instead of stalling a tool call.
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	return &execLog{f: f}
}

func (l *execLog) line(text string) {
	if l == nil {
		return
	}
	text = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, text)
	if len(text) > maxLogLine {
		text = text[:maxLogLine-3] + "..."
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.f.Write([]byte(text + "\n"))
}

// callNames is what a call's log line names of its arguments: paths, never contents.
type callNames struct {
	Path *string `json:"path"`
	From *string `json:"from"`
	To   *string `json:"to"`
	Base *string `json:"base"`
}

func describeArgs(raw json.RawMessage) string {
	var n callNames
	if json.Unmarshal(raw, &n) != nil {
		return ""
	}
	var b strings.Builder
	for _, kv := range []struct {
		k string
		v *string
	}{{"path", n.Path}, {"from", n.From}, {"to", n.To}, {"base", n.Base}} {
		if kv.v != nil {
			fmt.Fprintf(&b, " %s=%q", kv.k, *kv.v)
		}
	}
	return b.String()
}

// quiet ops are the channel's own upkeep, not work in the box: they leave no line.
var quiet = map[string]bool{"ping": true, "cancel": true, "schema": true, "note": true}

func (s *server) logCall(c *call, outcome string, bytesOut int) {
	if s.execLog == nil || quiet[c.op] {
		return
	}
	s.execLog.line(fmt.Sprintf("%s dockyard-tool req=%d op=%s%s outcome=%s ms=%d in=%d out=%d",
		stamp(time.Now()), c.id, c.op, c.names, outcome, time.Since(c.received).Milliseconds(), c.bytesIn, bytesOut))
}

type noteArgs struct {
	Line string `json:"line"`
}

func opNote(s *server, c *call, a *noteArgs, body []byte) (*empty, []byte, *opError) {
	s.execLog.line(stamp(time.Now()) + " " + a.Line)
	return &empty{}, nil, nil
}
