package main

// read_file, write_file, replace_in_file.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

const maxFileBytes = 64 << 20 // files replace_in_file reads whole; read_file's cap bound

type readFileArgs struct {
	Path      string `json:"path"`
	StartLine int64  `json:"start_line"`
	EndLine   *int64 `json:"end_line"`
	Numbered  bool   `json:"numbered"`
	Cap       int64  `json:"cap"`
}

type readFileResult struct {
	TotalLines    int64  `json:"total_lines"`
	SizeBytes     int64  `json:"size_bytes"`
	StartLine     int64  `json:"start_line"`
	EndLine       int64  `json:"end_line"`
	Truncated     bool   `json:"truncated"`
	ContentSha256 string `json:"content_sha256"`
}

type writeFileArgs struct {
	Path       string `json:"path"`
	Executable *bool  `json:"executable"`
}

type writeFileResult struct {
	BytesWritten  int64   `json:"bytes_written"`
	Created       bool    `json:"created"`
	Mode          string  `json:"mode"`
	Ignored       bool    `json:"ignored"`
	ContentSha256 string  `json:"content_sha256"`
	BeforeSha256  *string `json:"before_sha256"`
}

type replaceArgs struct {
	Path          string `json:"path"`
	ExpectedCount int64  `json:"expected_count"`
	OldLen        int64  `json:"old_len"`
}

type replaceResult struct {
	Replacements  int64  `json:"replacements"`
	ContentSha256 string `json:"content_sha256"`
	BeforeSha256  string `json:"before_sha256"`
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// --- read_file ------------------------------------------------------------------------------

// openRegular opens a resolved path for reading (never blocking on a FIFO) and checks it is a
// regular file.
func (r *Root) openRegular(resolved, path string) (*os.File, int64, *opError) {
	fd, err := r.open(resolved, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ENXIO) || errors.Is(err, syscall.EISDIR) {
			return nil, 0, pathErr("not_a_file", path, "not a regular file: %s", path)
		}
		if errors.Is(err, syscall.ENOENT) {
			return nil, 0, pathErr("file_not_found", path, "no such file: %s", path)
		}
		if errors.Is(err, syscall.EACCES) {
			return nil, 0, pathErr("file_not_found", path, "cannot read %s: %s", path, errnoText(err))
		}
		return nil, 0, openErr(err, path)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(fd)
		return nil, 0, pathErr("not_a_file", path, "not a regular file: %s", path)
	}
	return os.NewFile(uintptr(fd), path), st.Size, nil
}

func opReadFile(s *server, c *call, a *readFileArgs, _ []byte) (*readFileResult, []byte, *opError) {
	if a.StartLine < 1 {
		return nil, nil, invalid("start_line must be >= 1")
	}
	if a.Cap < 1 || a.Cap > maxBodyBytes {
		return nil, nil, invalid("cap must be 1 .. %d", maxBodyBytes)
	}
	rel := a.Path
	resolved, exists, e := s.root.resolve(rel)
	if e != nil {
		return nil, nil, e
	}
	if !exists {
		return nil, nil, pathErr("file_not_found", rel, "no such file: %s", rel)
	}
	f, _, e := s.root.openRegular(resolved, rel)
	if e != nil {
		return nil, nil, e
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	head, err := br.Peek(8000)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, nil, pathErr("file_not_found", rel, "cannot read %s: %s", rel, errnoText(err))
	}
	if bytes.IndexByte(head, 0) >= 0 {
		return nil, nil, pathErr("binary_file", rel, "binary file: %s", rel)
	}
	end := int64(math.MaxInt64)
	if a.EndLine != nil {
		end = *a.EndLine
	}
	capB := int(a.Cap)
	var out bytes.Buffer
	var total, size int64
	last := a.StartLine - 1
	truncated, collecting := false, true
	for n := int64(1); ; n++ {
		want := collecting && n >= a.StartLine && n <= end
		room := capB - out.Len()
		var lb []byte
		if want && a.Numbered {
			lb = []byte(fmt.Sprintf("%6d\t", n))
		}
		lineLen, eof := 0, false
		for {
			chunk, err := br.ReadSlice('\n')
			size += int64(len(chunk))
			lineLen += len(chunk)
			if want && len(lb) <= room {
				take := room + 1 - len(lb)
				if take > len(chunk) {
					take = len(chunk)
				}
				lb = append(lb, chunk[:take]...)
			}
			if err == bufio.ErrBufferFull {
				if c.ctx.Err() != nil {
					return nil, nil, ctxErr(c.ctx, c)
				}
				continue
			}
			if err == io.EOF {
				eof = true
			} else if err != nil {
				return nil, nil, pathErr("file_not_found", rel, "cannot read %s: %s", rel, errnoText(err))
			}
			break
		}
		if lineLen == 0 && eof {
			break
		}
		total++
		if want {
			if len(lb) > room {
				truncated = true
				if out.Len() == 0 { // a single line over the cap: cut it, it is all we can give
					out.Write(lb[:capB])
					last = n
				}
				collecting = false
			} else {
				out.Write(lb)
				last = n
			}
		}
		if eof {
			break
		}
		if n&4095 == 0 && c.ctx.Err() != nil {
			return nil, nil, ctxErr(c.ctx, c)
		}
	}
	if total > 0 && a.StartLine > total {
		return nil, nil, newErr("invalid_request", map[string]interface{}{"path": rel, "total_lines": total},
			"start_line %d is past the end of %s (%d lines)", a.StartLine, rel, total)
	}
	res := &readFileResult{TotalLines: total, SizeBytes: size, Truncated: truncated}
	if total > 0 {
		res.StartLine, res.EndLine = a.StartLine, last
	}
	body := out.Bytes()
	res.ContentSha256 = sha256Hex(body)
	return res, body, nil
}

// --- atomic writes --------------------------------------------------------------------------

var tmpSeq uint64

func tmpName() string {
	return fmt.Sprintf("%s%d-%d-%d", tmpMagic, os.Getpid(), atomic.AddUint64(&tmpSeq, 1), rand.Int63n(1e9))
}

func init() { rand.Seed(time.Now().UnixNano()) }

// writeAtomic writes data to a temp file next to name in pd (O_EXCL, fchmod'ed to mode, no
// umask), runs beforeCommit, checks the deadline, and renames it over name: a failure or a
// timed-out answer leaves the old bytes.
func (s *server) writeAtomic(c *call, pd *parentDir, name, path string, data []byte, mode uint32,
	beforeCommit func() *opError) *opError {
	var fd int
	var tmp string
	var err error
	for try := 0; try < 20; try++ {
		tmp = tmpName()
		fd, err = openat(pd.fd, tmp, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if err != syscall.EEXIST {
			break
		}
	}
	if err != nil {
		if isDiskFull(err) {
			return pathErr("disk_full", path, "workspace disk cap reached while writing %s", path)
		}
		return pathErr("write_failed", path, "cannot create a file in %s: %s", relOrDot(pd.rel), errnoText(err))
	}
	f := os.NewFile(uintptr(fd), tmp)
	fail := func(e *opError) *opError {
		f.Close()
		unlinkat(pd.fd, tmp, 0)
		return e
	}
	for off := 0; off < len(data); {
		n := len(data) - off
		if n > 4<<20 {
			n = 4 << 20
		}
		if _, err := f.Write(data[off : off+n]); err != nil {
			if isDiskFull(err) {
				return fail(pathErr("disk_full", path, "workspace disk cap reached while writing %s", path))
			}
			return fail(pathErr("write_failed", path, "cannot write %s: %s", path, errnoText(err)))
		}
		off += n
		if c.ctx.Err() != nil {
			return fail(ctxErr(c.ctx, c))
		}
	}
	if err := syscall.Fchmod(fd, mode); err != nil {
		return fail(pathErr("write_failed", path, "cannot set the mode of %s: %s", path, errnoText(err)))
	}
	if err := f.Close(); err != nil {
		unlinkat(pd.fd, tmp, 0)
		if isDiskFull(err) {
			return pathErr("disk_full", path, "workspace disk cap reached while writing %s", path)
		}
		return pathErr("write_failed", path, "cannot write %s: %s", path, errnoText(err))
	}
	if beforeCommit != nil {
		if e := beforeCommit(); e != nil {
			unlinkat(pd.fd, tmp, 0)
			return e
		}
	}
	if c.ctx.Err() != nil { // the last check: past it, the answer is the truth
		unlinkat(pd.fd, tmp, 0)
		return ctxErr(c.ctx, c)
	}
	if err := syscall.Renameat(pd.fd, tmp, pd.fd, name); err != nil {
		unlinkat(pd.fd, tmp, 0)
		if errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
			return pathErr("not_a_file", path, "not a regular file: %s", path)
		}
		return pathErr("write_failed", path, "cannot write %s: %s", path, errnoText(err))
	}
	return nil
}

func relOrDot(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

// hashAt: the sha256 of the regular file name in dirfd (links not followed).
func hashAt(dirfd int, name string) (string, error) {
	fd, err := openat(dirfd, name, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// --- write_file -----------------------------------------------------------------------------

func opWriteFile(s *server, c *call, a *writeFileArgs, data []byte) (*writeFileResult, []byte, *opError) {
	rel := a.Path
	resolved, _, e := s.root.resolve(rel)
	if e != nil {
		return nil, nil, e
	}
	if resolved == "" {
		return nil, nil, pathErr("invalid_request", rel, "cannot write the workspace root")
	}
	dir, name := splitRel(resolved)
	pd, e := s.root.openDir(dir, rel, true)
	if e != nil {
		return nil, nil, e
	}
	defer pd.close()
	res, e := s.writeInto(c, pd, name, resolved, rel, a.Executable, data)
	if e != nil {
		s.root.removeCreated(pd)
		return nil, nil, e
	}
	return res, nil, nil
}

func (s *server) writeInto(c *call, pd *parentDir, name, resolved, rel string, executable *bool, data []byte) (*writeFileResult, *opError) {
	st, exists, err := lstatAt(pd.fd, name)
	if err != nil && !exists {
		if errors.Is(err, syscall.ENAMETOOLONG) {
			return nil, openErr(err, rel)
		}
		return nil, pathErr("write_failed", rel, "cannot write %s: %s", rel, errnoText(err))
	}
	mode := uint32(0o644)
	var before *string
	if exists {
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
		case syscall.S_IFLNK:
			return nil, outside(rel, "the path changed during the call (a symbolic link appeared): %s", rel)
		default:
			return nil, pathErr("not_a_file", rel, "not a regular file: %s", rel)
		}
		mode = st.Mode & 0o7777
		h, err := hashAt(pd.fd, name)
		if err != nil {
			return nil, pathErr("write_failed", rel, "cannot read the old %s: %s", rel, errnoText(err))
		}
		before = &h
	}
	if executable != nil {
		mode = 0o644
		if *executable {
			mode = 0o755
		}
	}
	ignored := false
	e := s.writeAtomic(c, pd, name, rel, data, mode, func() *opError {
		ignored = s.checkIgnore(c, resolved)
		return nil
	})
	if e != nil {
		return nil, e
	}
	return &writeFileResult{BytesWritten: int64(len(data)), Created: !exists, Mode: gitMode(syscall.S_IFREG | mode),
		Ignored: ignored, ContentSha256: sha256Hex(data), BeforeSha256: before}, nil
}

// --- replace_in_file ------------------------------------------------------------------------

func opReplaceInFile(s *server, c *call, a *replaceArgs, body []byte) (*replaceResult, []byte, *opError) {
	rel := a.Path
	if a.ExpectedCount < 1 {
		return nil, nil, invalid("expected_count must be >= 1")
	}
	if a.OldLen < 1 || a.OldLen > int64(len(body)) {
		return nil, nil, invalid("old_len must be 1 .. the body's %d bytes", len(body))
	}
	old, repl := body[:a.OldLen], body[a.OldLen:]
	resolved, exists, e := s.root.resolve(rel)
	if e != nil {
		return nil, nil, e
	}
	if !exists {
		return nil, nil, pathErr("file_not_found", rel, "no such file: %s", rel)
	}
	if resolved == "" {
		return nil, nil, pathErr("not_a_file", rel, "not a regular file: %s", rel)
	}
	dir, name := splitRel(resolved)
	pd, e := s.root.openDir(dir, rel, false)
	if e != nil {
		return nil, nil, e
	}
	defer pd.close()
	st, ok, _ := lstatAt(pd.fd, name)
	switch {
	case !ok:
		return nil, nil, pathErr("file_not_found", rel, "no such file: %s", rel)
	case st.Mode&syscall.S_IFMT == syscall.S_IFLNK:
		return nil, nil, outside(rel, "the path changed during the call (a symbolic link appeared): %s", rel)
	case st.Mode&syscall.S_IFMT != syscall.S_IFREG:
		return nil, nil, pathErr("not_a_file", rel, "not a regular file: %s", rel)
	case st.Size > maxFileBytes:
		return nil, nil, newErr("payload_too_large", map[string]interface{}{"path": rel, "bytes": st.Size, "cap_bytes": maxFileBytes},
			"%s is %d bytes, over the %d-byte limit for edits", rel, st.Size, maxFileBytes)
	}
	fd, err := openat(pd.fd, name, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, openErr(err, rel)
	}
	f := os.NewFile(uintptr(fd), rel)
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	f.Close()
	if err != nil {
		return nil, nil, pathErr("file_not_found", rel, "cannot read %s: %s", rel, errnoText(err))
	}
	if len(data) > maxFileBytes {
		return nil, nil, newErr("payload_too_large", map[string]interface{}{"path": rel, "cap_bytes": maxFileBytes},
			"%s is over the %d-byte limit for edits", rel, maxFileBytes)
	}
	if isBinary(data) {
		return nil, nil, pathErr("binary_file", rel, "binary file: %s", rel)
	}
	var offsets []int
	for pos := 0; ; {
		i := bytes.Index(data[pos:], old)
		if i < 0 {
			break
		}
		offsets = append(offsets, pos+i)
		pos += i + len(old)
	}
	if int64(len(offsets)) != a.ExpectedCount {
		d := map[string]interface{}{"path": rel, "expected_count": a.ExpectedCount, "found_count": len(offsets)}
		if len(offsets) > 0 {
			lines := make([]int, len(offsets))
			strs := make([]string, len(offsets))
			for i, o := range offsets {
				lines[i] = lineOfOffset(data, o)
				strs[i] = fmt.Sprint(lines[i])
			}
			d["occurrence_lines"] = lines
			return nil, nil, newErr("edit_mismatch", d, "the text occurs %d times in %s, expected %d; lines %s",
				len(offsets), rel, a.ExpectedCount, strings.Join(strs, ", "))
		}
		closest := closestLines(data, old)
		d["closest_lines"] = closest
		hint := ""
		if len(closest) > 0 {
			strs := make([]string, len(closest))
			for i, l := range closest {
				strs[i] = fmt.Sprint(l)
			}
			hint = "; closest lines: " + strings.Join(strs, ", ")
		}
		return nil, nil, newErr("edit_mismatch", d, "the text was not found in %s%s", rel, hint)
	}
	var out bytes.Buffer
	var ranges [][2]int
	prev := 0
	newLines := bytes.Count(repl, []byte("\n"))
	endsNL := bytes.HasSuffix(repl, []byte("\n"))
	for _, o := range offsets {
		out.Write(data[prev:o])
		first := 1 + bytes.Count(out.Bytes(), []byte("\n"))
		out.Write(repl)
		lastL := first + newLines
		if endsNL {
			lastL--
		}
		if lastL < first {
			lastL = first
		}
		ranges = append(ranges, [2]int{first, lastL})
		prev = o + len(old)
	}
	out.Write(data[prev:])
	if out.Len() > maxFileBytes {
		return nil, nil, newErr("payload_too_large", map[string]interface{}{"path": rel, "bytes": out.Len(), "cap_bytes": maxFileBytes},
			"the edited %s would be over the %d-byte limit", rel, maxFileBytes)
	}
	if e := s.writeAtomic(c, pd, name, rel, out.Bytes(), st.Mode&0o7777, nil); e != nil {
		return nil, nil, e
	}
	return &replaceResult{Replacements: int64(len(offsets)), ContentSha256: sha256Hex(out.Bytes()),
		BeforeSha256: sha256Hex(data)}, snippet(out.Bytes(), ranges, 3), nil
}

func isBinary(data []byte) bool {
	head := data
	if len(head) > 8000 {
		head = head[:8000]
	}
	return bytes.IndexByte(head, 0) >= 0
}

func lineOfOffset(data []byte, off int) int { return 1 + bytes.Count(data[:off], []byte("\n")) }

// splitLines: each line keeps its own ending (\n, \r\n, or none for the last).
func splitLines(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			out = append(out, data)
			break
		}
		out = append(out, data[:i+1])
		data = data[i+1:]
	}
	return out
}

// perlSplitNL is Perl's `split /\n/, $s`: trailing empty fields dropped.
func perlSplitNL(s []byte) [][]byte {
	parts := bytes.Split(s, []byte("\n"))
	for len(parts) > 0 && len(parts[len(parts)-1]) == 0 {
		parts = parts[:len(parts)-1]
	}
	return parts
}

// Perl's \s on a byte string: space, \t, \n, \v, \f, \r.
func isPerlSpace(b byte) bool { return b == ' ' || (b >= '\t' && b <= '\r') }

func perlTrim(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && isPerlSpace(b[i]) {
		i++
	}
	for j > i && isPerlSpace(b[j-1]) {
		j--
	}
	return b[i:j]
}

func hasNonSpace(b []byte) bool {
	for _, c := range b {
		if !isPerlSpace(c) {
			return true
		}
	}
	return false
}

// closestLines: lines of the file most similar (Dice bigrams > 0.5) to the first non-blank line
// of the text that did not match; the top 5, best first, then by line.
func closestLines(data, old []byte) []int {
	var probe []byte
	found := false
	for _, l := range perlSplitNL(old) {
		if hasNonSpace(l) {
			probe, found = perlTrim(l), true
			break
		}
	}
	out := []int{}
	if !found {
		return out
	}
	type scored struct {
		s    float64
		line int
	}
	var sc []scored
	for i, l := range perlSplitNL(data) {
		l = perlTrim(l)
		if len(l) == 0 {
			continue
		}
		if s := similarity(probe, l); s > 0.5 {
			sc = append(sc, scored{s, i + 1})
		}
	}
	sort.SliceStable(sc, func(i, j int) bool {
		if sc[i].s != sc[j].s {
			return sc[i].s > sc[j].s
		}
		return sc[i].line < sc[j].line
	})
	for i := 0; i < len(sc) && i < 5; i++ {
		out = append(out, sc[i].line)
	}
	return out
}

// similarity: the Dice coefficient over byte bigrams.
func similarity(a, b []byte) float64 {
	if bytes.Equal(a, b) {
		return 1
	}
	ga := map[string]int{}
	for i := 0; i+2 <= len(a); i++ {
		ga[string(a[i:i+2])]++
	}
	hit, nb := 0, 0
	for i := 0; i+2 <= len(b); i++ {
		g := string(b[i : i+2])
		nb++
		if ga[g] > 0 {
			hit++
			ga[g]--
		}
	}
	na := len(a) - 1
	if na+nb <= 0 {
		return 0
	}
	return 2 * float64(hit) / float64(na+nb)
}

// snippet: the changed line ranges with context lines around them, numbered `%6d\t`, merged
// ranges joined, "...\n" between the others.
func snippet(data []byte, ranges [][2]int, context int) []byte {
	lines := splitLines(data)
	sorted := append([][2]int(nil), ranges...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i][0] < sorted[j][0] })
	var merged [][2]int
	for _, r := range sorted {
		s, e := r[0]-context, r[1]+context
		if s < 1 {
			s = 1
		}
		if e > len(lines) {
			e = len(lines)
		}
		if len(merged) > 0 && s <= merged[len(merged)-1][1]+1 {
			if e > merged[len(merged)-1][1] {
				merged[len(merged)-1][1] = e
			}
		} else {
			merged = append(merged, [2]int{s, e})
		}
	}
	var out bytes.Buffer
	for _, m := range merged {
		if out.Len() > 0 {
			out.WriteString("...\n")
		}
		for n := m[0]; n <= m[1]; n++ {
			var l []byte
			if n-1 < len(lines) {
				l = lines[n-1]
			}
			if bytes.HasSuffix(l, []byte("\r\n")) {
				l = l[:len(l)-2]
			} else {
				l = bytes.TrimSuffix(l, []byte("\n"))
			}
			fmt.Fprintf(&out, "%6d\t%s\n", n, l)
		}
	}
	return out.Bytes()
}
