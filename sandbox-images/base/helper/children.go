package main

// Child processes (git, rg). Each runs in its own process group; at its request's deadline, on
// cancel, or at stdin EOF the whole group gets SIGKILL.

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
)

type child struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	exited bool
	done   chan struct{}
	set    *childSet
}

type childSet struct {
	mu     sync.Mutex
	m      map[*child]struct{}
	closed bool
}

func newChildSet() *childSet { return &childSet{m: map[*child]struct{}{}} }

// killAll kills every live child and refuses new ones (the channel is going away).
func (cs *childSet) killAll() {
	cs.mu.Lock()
	cs.closed = true
	kids := make([]*child, 0, len(cs.m))
	for ch := range cs.m {
		kids = append(kids, ch)
	}
	cs.mu.Unlock()
	for _, ch := range kids {
		ch.kill()
	}
}

func (cs *childSet) live() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.m)
}

// command builds a child that runs in dir with the helper's environment plus extra.
func command(dir string, extraEnv []string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// start starts cmd; it is killed (its process group) when ctx ends before it exits.
func (cs *childSet) start(ctx context.Context, cmd *exec.Cmd) (*child, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := &child{cmd: cmd, done: make(chan struct{}), set: cs}
	cs.mu.Lock()
	closed := cs.closed
	cs.m[ch] = struct{}{}
	cs.mu.Unlock()
	if closed {
		ch.kill()
	}
	go func() {
		select {
		case <-ctx.Done():
			ch.kill()
		case <-ch.done:
		}
	}()
	return ch, nil
}

func (ch *child) kill() {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if !ch.exited && ch.cmd.Process != nil {
		syscall.Kill(-ch.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// wait reaps the child (call once, after its pipes are drained).
func (ch *child) wait() error {
	err := ch.cmd.Wait()
	ch.mu.Lock()
	ch.exited = true
	ch.mu.Unlock()
	close(ch.done)
	ch.set.mu.Lock()
	delete(ch.set.m, ch)
	ch.set.mu.Unlock()
	return err
}

// capWriter keeps the first max bytes written to it and counts the rest.
type capWriter struct {
	buf   bytes.Buffer
	max   int
	total int64
}

func (w *capWriter) Write(p []byte) (int, error) {
	w.total += int64(len(p))
	if room := w.max - w.buf.Len(); room > 0 {
		if len(p) > room {
			w.buf.Write(p[:room])
		} else {
			w.buf.Write(p)
		}
	}
	return len(p), nil
}

// runResult is what a captured child produced.
type runResult struct {
	stdout   []byte
	over     bool // stdout passed its cap (the child was killed there)
	stderr   []byte
	exitCode int // -1: killed or not run
	err      error
}

// run runs cmd to completion: stdin from in (may be nil), stdout kept up to outCap bytes (more →
// over=true and the child is killed at once), stderr up to 64 KiB.
func (cs *childSet) run(ctx context.Context, cmd *exec.Cmd, in io.Reader, outCap int) runResult {
	errw := &capWriter{max: 64 << 10}
	cmd.Stderr = errw
	if in != nil {
		cmd.Stdin = in
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return runResult{exitCode: -1, err: err}
	}
	ch, err := cs.start(ctx, cmd)
	if err != nil {
		return runResult{exitCode: -1, err: err}
	}
	var out bytes.Buffer
	over := false
	buf := make([]byte, 64<<10)
	for {
		n, rerr := stdout.Read(buf)
		if n > 0 {
			if out.Len()+n > outCap {
				out.Write(buf[:outCap-out.Len()])
				over = true
				ch.kill()
				io.Copy(io.Discard, stdout)
				break
			}
			out.Write(buf[:n])
		}
		if rerr != nil {
			break
		}
	}
	werr := ch.wait()
	res := runResult{stdout: out.Bytes(), over: over, stderr: errw.buf.Bytes(), exitCode: -1, err: werr}
	if cmd.ProcessState != nil {
		res.exitCode = cmd.ProcessState.ExitCode()
	}
	return res
}
