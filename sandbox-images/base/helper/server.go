package main

// The channel: one reader, one goroutine per request (at most 64 running, the rest waiting in
// arrival order), one writer that writes whole frames in completion order.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

const (
	protocolVersion = 1
	maxConcurrent   = 64
	maxDeadlineMs   = 24 * 3600 * 1000
)

type call struct {
	id        int64
	op        string
	received  time.Time
	ctx       context.Context
	cancelFn  context.CancelFunc
	cancelled int32
	names     string // the paths its arguments name (for the box's log line)
	bytesIn   int
}

func (c *call) wasCancelled() bool { return atomic.LoadInt32(&c.cancelled) == 1 }

type server struct {
	root  *Root
	out   io.Writer
	wmu   sync.Mutex
	sem   *fifoSem
	kids  *childSet
	gitMu sync.Mutex // one index writer at a time (diff's `git add`)

	mu       sync.Mutex
	calls    map[int64]*call
	base     context.Context
	stop     context.CancelFunc
	stopping int32
	wg       sync.WaitGroup
	log      io.Writer
	execLog  *execLog // the box's log stream (nil outside a job box)
}

func newServer(root *Root, out io.Writer, logw io.Writer) *server {
	base, stop := context.WithCancel(context.Background())
	if logw == nil {
		logw = io.Discard
	}
	return &server{root: root, out: out, sem: newFifoSem(maxConcurrent), kids: newChildSet(),
		calls: map[int64]*call{}, base: base, stop: stop, log: logw, execLog: openExecLog(logFifo)}
}

type reqHeader struct {
	ID         *int64          `json:"id"`
	Op         *string         `json:"op"`
	Args       json.RawMessage `json:"args"`
	DeadlineMs *int64          `json:"deadline_ms"`
}

type respHeader struct {
	ID         int64       `json:"id"`
	OK         bool        `json:"ok"`
	Result     interface{} `json:"result,omitempty"`
	Error      *opError    `json:"error,omitempty"`
	DurationMs int64       `json:"duration_ms"`
}

type helloResult struct {
	Version     int      `json:"version"`
	Pid         int      `json:"pid"`
	Ops         []string `json:"ops"`
	Confinement string   `json:"confinement"`
}

// serve speaks the protocol on in/out until stdin ends (0) or a frame is malformed (2).
func (s *server) serve(in io.Reader) int {
	names := make([]string, 0, len(ops))
	for n := range ops {
		names = append(names, n)
	}
	sort.Strings(names)
	hello := &helloResult{Version: protocolVersion, Pid: os.Getpid(), Ops: names, Confinement: s.root.confinement()}
	if err := s.write(&respHeader{ID: 0, OK: true, Result: hello}, nil); err != nil {
		return 1
	}
	for {
		h, body, err := readFrame(in, kindRequest)
		var perr *errProtocol
		if errors.As(err, &perr) {
			s.protocolError(perr.msg)
			return 2
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				fmt.Fprintf(s.log, "dockyard-tool: reading stdin: %v\n", err)
			}
			s.shutdown()
			return 0
		}
		received := time.Now()
		var req reqHeader
		if err := json.Unmarshal(h, &req); err != nil {
			s.protocolError("the header is not a JSON object: " + err.Error())
			return 2
		}
		if req.ID == nil || *req.ID < 1 || req.Op == nil {
			s.protocolError("the header needs an integer id >= 1 and an op")
			return 2
		}
		c := &call{id: *req.ID, op: *req.Op, received: received, names: describeArgs(req.Args), bytesIn: len(body)}
		s.mu.Lock()
		_, dup := s.calls[c.id]
		s.mu.Unlock()
		if dup {
			s.protocolError(fmt.Sprintf("id %d is already in flight", c.id))
			return 2
		}
		if req.DeadlineMs == nil || *req.DeadlineMs < 1 {
			s.respondErr(c, invalid("deadline_ms must be an integer >= 1"))
			continue
		}
		dl := *req.DeadlineMs
		if dl > maxDeadlineMs {
			dl = maxDeadlineMs
		}
		c.ctx, c.cancelFn = context.WithDeadline(s.base, received.Add(time.Duration(dl)*time.Millisecond))
		if c.op == "cancel" { // answered at once, never queued behind the requests it may cancel
			s.doCancel(c, req.Args)
			c.cancelFn()
			continue
		}
		spec, ok := ops[c.op]
		if !ok {
			s.respondErr(c, newErr("unknown_op", map[string]interface{}{"op": c.op}, "unknown op %q", c.op))
			c.cancelFn()
			continue
		}
		s.mu.Lock()
		s.calls[c.id] = c
		s.mu.Unlock()
		ticket := s.sem.enqueue()
		s.wg.Add(1)
		go s.run(c, spec, ticket, req.Args, body)
	}
}

func (s *server) run(c *call, spec *opSpec, ticket *waiter, args json.RawMessage, body []byte) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.calls, c.id)
		s.mu.Unlock()
		c.cancelFn()
	}()
	if err := s.sem.wait(c.ctx, ticket); err != nil {
		s.respondErr(c, ctxErr(c.ctx, c))
		return
	}
	defer s.sem.release()
	if c.ctx.Err() != nil {
		s.respondErr(c, ctxErr(c.ctx, c))
		return
	}
	type outcome struct {
		res  interface{}
		body []byte
		err  *opError
	}
	done := make(chan outcome, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				fmt.Fprintf(s.log, "dockyard-tool: op %s panicked: %v\n", c.op, p)
				done <- outcome{err: newErr("internal_error", nil, "the helper failed: %v", p)}
			}
		}()
		r, b, e := spec.run(s, c, args, body)
		done <- outcome{r, b, e}
	}()
	var o outcome
	select {
	case o = <-done:
	case <-c.ctx.Done():
		if !spec.mutating {
			// A read-only op answers at the deadline; its children are being killed and
			// whatever it returns later is dropped.
			s.respondErr(c, ctxErr(c.ctx, c))
			return
		}
		o = <-done // a write op checks the deadline before its commit: its answer is the truth
	}
	if o.err != nil {
		if c.ctx.Err() != nil && o.err.Code != "timed_out" && o.err.Code != "cancelled" {
			o.err = ctxErr(c.ctx, c)
		}
		s.respondErr(c, o.err)
		return
	}
	s.respond(c, o.res, o.body)
}

func (s *server) doCancel(c *call, raw json.RawMessage) {
	var a cancelArgs
	if e := decodeArgs(raw, &a); e != nil {
		s.respondErr(c, e)
		return
	}
	s.mu.Lock()
	target, found := s.calls[a.ID]
	s.mu.Unlock()
	if found {
		atomic.StoreInt32(&target.cancelled, 1)
		target.cancelFn()
	}
	s.respond(c, &cancelResult{Found: found}, nil)
}

func (s *server) respond(c *call, result interface{}, body []byte) {
	s.logCall(c, "ok", len(body))
	s.write(&respHeader{ID: c.id, OK: true, Result: result, DurationMs: time.Since(c.received).Milliseconds()}, body)
}

func (s *server) respondErr(c *call, e *opError) {
	s.logCall(c, e.Code, 0)
	s.write(&respHeader{ID: c.id, OK: false, Error: e, DurationMs: time.Since(c.received).Milliseconds()}, nil)
}

func (s *server) protocolError(msg string) {
	fmt.Fprintf(s.log, "dockyard-tool: protocol error: %s\n", msg)
	s.write(&respHeader{ID: 0, OK: false, Error: newErr("protocol_error", nil, "%s", msg)}, nil)
	s.shutdown()
}

// write sends one response frame; a header or body over the frame limits becomes a
// payload_too_large answer instead.
func (s *server) write(h *respHeader, body []byte) error {
	if atomic.LoadInt32(&s.stopping) == 1 {
		return nil
	}
	hb, err := json.Marshal(h)
	if err == nil && (len(hb) > maxHeaderBytes || len(body) > maxBodyBytes) {
		e := newErr("payload_too_large", map[string]interface{}{"header_bytes": len(hb), "body_bytes": len(body)},
			"the answer is over the frame limits")
		hb, err = json.Marshal(&respHeader{ID: h.ID, OK: false, Error: e, DurationMs: h.DurationMs})
		body = nil
	}
	if err != nil {
		hb, _ = json.Marshal(&respHeader{ID: h.ID, OK: false, DurationMs: h.DurationMs,
			Error: newErr("internal_error", nil, "cannot encode the answer: %v", err)})
		body = nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := writeFrame(s.out, kindResponse, hb, body); err != nil {
		fmt.Fprintf(s.log, "dockyard-tool: writing stdout: %v\n", err)
		return err
	}
	return nil
}

// shutdown: stdin is gone (or the peer broke the framing) — kill every child, answer nothing more.
func (s *server) shutdown() {
	s.wmu.Lock()
	atomic.StoreInt32(&s.stopping, 1)
	s.wmu.Unlock()
	s.stop()
	s.kids.killAll()
}

// --- a FIFO semaphore -------------------------------------------------------------------------

type waiter struct {
	ch      chan struct{}
	granted bool
}

type fifoSem struct {
	mu   sync.Mutex
	free int
	q    []*waiter
}

func newFifoSem(n int) *fifoSem { return &fifoSem{free: n} }

// enqueue takes a place in line (called by the reader, so the line is arrival order).
func (f *fifoSem) enqueue() *waiter {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := &waiter{ch: make(chan struct{})}
	if f.free > 0 && len(f.q) == 0 {
		f.free--
		w.granted = true
		close(w.ch)
	} else {
		f.q = append(f.q, w)
	}
	return w
}

func (f *fifoSem) wait(ctx context.Context, w *waiter) error {
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
	}
	f.mu.Lock()
	if w.granted {
		f.mu.Unlock()
		f.release()
		return ctx.Err()
	}
	for i, q := range f.q {
		if q == w {
			f.q = append(f.q[:i], f.q[i+1:]...)
			break
		}
	}
	f.mu.Unlock()
	return ctx.Err()
}

func (f *fifoSem) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.q) > 0 {
		w := f.q[0]
		f.q = f.q[1:]
		w.granted = true
		close(w.ch)
		return
	}
	f.free++
}
