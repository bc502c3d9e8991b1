package main

// git: `ignored` (check-ignore), diff, read_blobs.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

const maxDiffSection = 32 << 20

var (
	gitBase  = []string{"-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"}
	gitDiffC = []string{"-c", "core.quotepath=off", "-c", "diff.noprefix=false", "-c", "diff.mnemonicPrefix=false"}
	gitEnv   = []string{"GIT_OPTIONAL_LOCKS=0", "GIT_TERMINAL_PROMPT=0"}
	hexRe    = regexp.MustCompile(`\A[0-9a-f]{40,64}\z`)
)

type diffArgs struct {
	Base     string `json:"base"`
	PatchCap int64  `json:"patch_cap"`
}

type diffResult struct {
	Sections       []int `json:"sections"`
	PatchTruncated bool  `json:"patch_truncated"`
}

type readBlobsArgs struct {
	Shas []string `json:"shas"`
	Cap  int64    `json:"cap"`
}

type blobInfo struct {
	Sha  string `json:"sha"`
	Size int64  `json:"size"`
}

type readBlobsResult struct {
	Blobs []blobInfo `json:"blobs"`
}

func (s *server) git(args ...string) *exec.Cmd {
	return command(s.root.path, gitEnv, "git", append(append([]string(nil), gitBase...), args...)...)
}

func toolMissing(err error) *opError {
	if errors.Is(err, exec.ErrNotFound) {
		return newErr("tool_missing", nil, "%v", err)
	}
	return nil
}

func gitFailed(what string, r runResult) *opError {
	if e := toolMissing(r.err); e != nil {
		return e
	}
	msg := strings.TrimSpace(string(r.stderr))
	return newErr("git_failed", map[string]interface{}{"exit_code": r.exitCode, "stderr": msg}, "%s failed: %s", what, msg)
}

// checkIgnore: `git check-ignore -q -- rel` exits 0 (any other outcome: not ignored).
func (s *server) checkIgnore(c *call, rel string) bool {
	r := s.kids.run(c.ctx, s.git("check-ignore", "-q", "--", rel), nil, 4096)
	return r.err == nil && r.exitCode == 0
}

// --- diff -----------------------------------------------------------------------------------

func opDiff(s *server, c *call, a *diffArgs, _ []byte) (*diffResult, []byte, *opError) {
	if !hexRe.MatchString(a.Base) {
		return nil, nil, invalid("bad base commit")
	}
	if a.PatchCap < 0 || a.PatchCap > maxBodyBytes {
		return nil, nil, invalid("patch_cap must be 0 .. %d", maxBodyBytes)
	}
	s.gitMu.Lock()
	defer s.gitMu.Unlock()
	if c.ctx.Err() != nil {
		return nil, nil, ctxErr(c.ctx, c)
	}
	if r := s.kids.run(c.ctx, s.git(append(gitDiffC, "add", "--all", "--", ".")...), nil, 64<<10); r.err != nil || r.exitCode != 0 {
		return nil, nil, gitFailed("git add", r)
	}
	d := append(append([]string(nil), gitDiffC...), "diff", "--cached", "--no-renames", "--no-ext-diff", "--no-textconv", "--no-color", a.Base)
	var sections [][]byte
	truncated := false
	for i, extra := range [][]string{{"--raw", "-z", "--abbrev=40"}, {"--numstat", "-z"}, {"--patch"}} {
		limit := maxDiffSection
		if i == 2 {
			limit = int(a.PatchCap)
		}
		r := s.kids.run(c.ctx, s.git(append(append([]string(nil), d...), extra...)...), nil, limit)
		if r.over {
			if i < 2 {
				return nil, nil, newErr("payload_too_large", map[string]interface{}{"cap_bytes": maxDiffSection},
					"the diff's %s section is over %d bytes", extra[0][2:], maxDiffSection)
			}
			truncated = true
		} else if r.err != nil || r.exitCode != 0 {
			return nil, nil, gitFailed("git diff", r)
		}
		sections = append(sections, r.stdout)
	}
	total := len(sections[0]) + len(sections[1]) + len(sections[2])
	if total > maxBodyBytes {
		return nil, nil, newErr("payload_too_large", map[string]interface{}{"bytes": total, "cap_bytes": maxBodyBytes},
			"the diff is %d bytes, over %d", total, maxBodyBytes)
	}
	body := make([]byte, 0, total)
	for _, sec := range sections {
		body = append(body, sec...)
	}
	return &diffResult{Sections: []int{len(sections[0]), len(sections[1]), len(sections[2])}, PatchTruncated: truncated}, body, nil
}

// --- read_blobs -----------------------------------------------------------------------------

func opReadBlobs(s *server, c *call, a *readBlobsArgs, _ []byte) (*readBlobsResult, []byte, *opError) {
	if a.Cap < 0 || a.Cap > maxBodyBytes {
		return nil, nil, invalid("cap must be 0 .. %d", maxBodyBytes)
	}
	for _, sha := range a.Shas {
		if !hexRe.MatchString(sha) {
			return nil, nil, newErr("invalid_request", map[string]interface{}{"sha": sha}, "not an object id: %q", sha)
		}
	}
	res := &readBlobsResult{Blobs: []blobInfo{}}
	if len(a.Shas) == 0 {
		return res, nil, nil
	}
	cmd := s.git("cat-file", "--batch")
	cmd.Stdin = strings.NewReader(strings.Join(a.Shas, "\n") + "\n")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, newErr("git_failed", nil, "%v", err)
	}
	errw := &capWriter{max: 64 << 10}
	cmd.Stderr = errw
	ch, err := s.kids.start(c.ctx, cmd)
	if err != nil {
		if e := toolMissing(err); e != nil {
			return nil, nil, e
		}
		return nil, nil, newErr("git_failed", nil, "cannot run git: %v", err)
	}
	e, body := readBatch(c.ctx, bufio.NewReaderSize(stdout, 64<<10), a, res)
	ch.kill()
	io.Copy(io.Discard, stdout)
	ch.wait()
	if e != nil {
		if c.ctx.Err() != nil {
			return nil, nil, ctxErr(c.ctx, c)
		}
		return nil, nil, e
	}
	return res, body, nil
}

func readBatch(ctx context.Context, br *bufio.Reader, a *readBlobsArgs, res *readBlobsResult) (*opError, []byte) {
	var body bytes.Buffer
	var total int64
	var firstErr *opError
	over := false
	for _, sha := range a.Shas {
		line, err := br.ReadString('\n')
		if err != nil {
			return newErr("git_failed", nil, "git cat-file ended early: %v", err), nil
		}
		f := strings.Fields(strings.TrimSuffix(line, "\n"))
		if len(f) == 2 && (f[1] == "missing" || f[1] == "ambiguous") {
			if firstErr == nil {
				firstErr = newErr("file_not_found", map[string]interface{}{"sha": sha}, "no such object: %s", sha)
			}
			continue
		}
		if len(f) != 3 {
			return newErr("git_failed", nil, "unexpected git cat-file output: %q", line), nil
		}
		size, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return newErr("git_failed", nil, "unexpected git cat-file output: %q", line), nil
		}
		keep := f[1] == "blob" && firstErr == nil && !over && total+size <= a.Cap
		if f[1] != "blob" && firstErr == nil {
			firstErr = newErr("invalid_request", map[string]interface{}{"sha": sha, "type": f[1]}, "%s is a %s, not a blob", sha, f[1])
		}
		if f[1] == "blob" {
			total += size
			if total > a.Cap {
				over = true
			}
		}
		if keep {
			if _, err := io.CopyN(&body, br, size); err != nil {
				return newErr("git_failed", nil, "git cat-file ended early: %v", err), nil
			}
			res.Blobs = append(res.Blobs, blobInfo{Sha: sha, Size: size})
		} else if _, err := io.CopyN(io.Discard, br, size); err != nil {
			return newErr("git_failed", nil, "git cat-file ended early: %v", err), nil
		}
		if _, err := br.Discard(1); err != nil { // the newline after the content
			return newErr("git_failed", nil, "git cat-file ended early: %v", err), nil
		}
		if ctx.Err() != nil {
			return newErr("timed_out", nil, "the request's deadline passed"), nil
		}
	}
	if firstErr != nil {
		return firstErr, nil
	}
	if over {
		return newErr("payload_too_large", map[string]interface{}{"bytes": total, "cap_bytes": a.Cap},
			"the blobs are %d bytes, over the cap of %d", total, a.Cap), nil
	}
	return nil, body.Bytes()
}
