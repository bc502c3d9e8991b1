package main

// search: ripgrep over what git sees — every tracked file under the path (whatever .gitignore
// says) plus the untracked files git does not ignore, never .git. rg walks with its own ignore
// logic off (--no-ignore) and an ignore file (on fd 3) naming exactly git's untracked-ignored
// entries (`git ls-files --others --ignored --directory`), so the caller's glob applies to
// every file the same way. rg runs in the search folder opened beneath the root (its cwd is
// /proc/self/fd/N), so a link swapped in after resolution is never followed out.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"unicode/utf8"
)

const (
	maxRgLine         = 16 << 20  // rg JSON lines over this are skipped (truncated = true)
	searchTextBudget  = 768 << 10 // the matches' text in one answer header
	maxIgnoreListSize = 32 << 20
)

type searchArgs struct {
	Path          string  `json:"path"`
	Pattern       string  `json:"pattern"`
	Glob          *string `json:"glob"`
	FixedString   bool    `json:"fixed_string"`
	CaseSensitive bool    `json:"case_sensitive"`
	MaxResults    int64   `json:"max_results"`
	MaxText       int64   `json:"max_text"`
}

type searchMatch struct {
	Path   string `json:"path"`
	Line   int64  `json:"line"`
	Column int64  `json:"column"`
	Text   string `json:"text"`
}

type searchResult struct {
	Matches       []searchMatch `json:"matches"`
	Truncated     bool          `json:"truncated"`
	FilesSearched int64         `json:"files_searched"`
}

// ignoredSet: git's untracked-ignored entries, relative to the search folder.
type ignoredSet struct {
	files map[string]bool
	dirs  map[string]bool // without the trailing slash
	all   bool            // the search target itself is ignored
}

func (ig *ignoredSet) has(p string) bool {
	if ig.all || ig.files[p] {
		return true
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && ig.dirs[p[:i]] {
			return true
		}
	}
	return false
}

// gitIgnored lists git's untracked-ignored entries under target (root-relative); ok false when
// git cannot tell (not a repository, or too many).
func (s *server) gitIgnored(c *call, target, base string) (*ignoredSet, bool) {
	spec := target
	if spec == "" {
		spec = "."
	}
	r := s.kids.run(c.ctx, s.git("--literal-pathspecs", "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory", "--", spec), nil, maxIgnoreListSize)
	if r.err != nil || r.exitCode != 0 || r.over {
		return nil, false
	}
	ig := &ignoredSet{files: map[string]bool{}, dirs: map[string]bool{}}
	for _, e := range strings.Split(string(r.stdout), "\x00") {
		if e == "" {
			continue
		}
		isDir := strings.HasSuffix(e, "/")
		e = strings.TrimSuffix(e, "/")
		if e == target || (base != "" && e == base) || (isDir && strings.HasPrefix(target+"/", e+"/")) {
			ig.all = true
			continue
		}
		rel := e
		if base != "" {
			if !strings.HasPrefix(e, base+"/") {
				continue
			}
			rel = e[len(base)+1:]
		}
		if isDir {
			ig.dirs[rel] = true
		} else {
			ig.files[rel] = true
		}
	}
	return ig, true
}

// ignorePattern: an anchored gitignore line matching exactly rel ("" when none can: a newline).
func ignorePattern(rel string, dir bool) string {
	if strings.ContainsAny(rel, "\n\r") {
		return ""
	}
	var b strings.Builder
	b.WriteByte('/')
	for i := 0; i < len(rel); i++ {
		switch c := rel[i]; c {
		case '\\', '*', '?', '[', ']', ' ', '!', '#', '{', '}':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	if dir {
		b.WriteByte('/')
	}
	return b.String()
}

type rgMsg struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

type rgText struct {
	Text  *string `json:"text"`
	Bytes []byte  `json:"bytes"` // base64 in rg's JSON
}

func (t rgText) get() []byte {
	if t.Text != nil {
		return []byte(*t.Text)
	}
	return t.Bytes
}

type rgMatch struct {
	Path       rgText `json:"path"`
	Lines      rgText `json:"lines"`
	LineNumber int64  `json:"line_number"`
	Submatches []struct {
		Start int `json:"start"`
		End   int `json:"end"`
	} `json:"submatches"`
}

type rgSummary struct {
	Stats struct {
		Searches int64 `json:"searches"`
	} `json:"stats"`
}

func opSearch(s *server, c *call, a *searchArgs, _ []byte) (*searchResult, []byte, *opError) {
	if a.MaxResults < 1 {
		return nil, nil, invalid("max_results must be >= 1")
	}
	if a.MaxText < 1 {
		return nil, nil, invalid("max_text must be >= 1")
	}
	if strings.IndexByte(a.Pattern, 0) >= 0 { // a program argument cannot hold one
		return nil, nil, newErr("invalid_pattern", map[string]interface{}{"pattern": a.Pattern},
			"a search pattern must not contain a NUL byte")
	}
	if a.Glob != nil && strings.IndexByte(*a.Glob, 0) >= 0 {
		return nil, nil, newErr("invalid_request", map[string]interface{}{"glob": *a.Glob},
			"a glob must not contain a NUL byte")
	}
	rel := a.Path
	resolved, exists, e := s.root.resolve(rel)
	if e != nil {
		return nil, nil, e
	}
	if !exists {
		return nil, nil, pathErr("file_not_found", rel, "no such path: %s", rel)
	}
	// The folder rg runs in (opened beneath the root) and what it searches there.
	tfd, err := s.root.open(resolved, oPath, 0)
	if err != nil {
		return nil, nil, openErr(err, rel)
	}
	defer syscall.Close(tfd)
	var st syscall.Stat_t
	if err := syscall.Fstat(tfd, &st); err != nil {
		return nil, nil, openErr(err, rel)
	}
	isDir := st.Mode&syscall.S_IFMT == syscall.S_IFDIR
	base, cwdfd := resolved, tfd
	var extra []*os.File
	target := "."
	if !isDir {
		dir, _ := splitRel(resolved)
		base = dir
		dfd, err := s.root.open(dir, oPath|syscall.O_DIRECTORY, 0)
		if err != nil {
			return nil, nil, openErr(err, rel)
		}
		defer syscall.Close(dfd)
		cwdfd = dfd
		// the file itself, opened beneath the root: rg reads it through our fd
		ffd, err := s.root.open(resolved, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return nil, nil, openErr(err, rel)
		}
		f := os.NewFile(uintptr(ffd), resolved)
		defer f.Close()
		extra = append(extra, f)
		target = "/proc/self/fd/3"
	}

	res := &searchResult{Matches: []searchMatch{}}
	ig, gitOK := s.gitIgnored(c, resolved, base)
	if c.ctx.Err() != nil {
		return nil, nil, ctxErr(c.ctx, c)
	}
	if gitOK && ig.all {
		return res, nil, nil
	}

	argv := []string{"--json", "--no-config", "--hidden", "--max-count", fmt.Sprint(a.MaxResults + 1)}
	if gitOK {
		argv = append(argv, "--no-ignore")
		if isDir {
			var list bytes.Buffer
			for d := range ig.dirs {
				if p := ignorePattern(d, true); p != "" {
					list.WriteString(p + "\n")
				}
			}
			for f := range ig.files {
				if p := ignorePattern(f, false); p != "" {
					list.WriteString(p + "\n")
				}
			}
			pr, pw, err := os.Pipe()
			if err != nil {
				return nil, nil, newErr("internal_error", nil, "pipe: %v", err)
			}
			defer pr.Close()
			go func() {
				pw.Write(list.Bytes())
				pw.Close()
			}()
			extra = append(extra, pr)
			argv = append(argv, "--ignore-file", "/dev/fd/3")
		}
	} else {
		argv = append(argv, "--no-ignore-dot", "--no-ignore-parent")
	}
	if a.Glob != nil && *a.Glob != "" {
		argv = append(argv, "--glob", *a.Glob)
	}
	argv = append(argv, "--glob", "!.git", "--glob", "!"+tmpMagic+"*")
	if a.FixedString {
		argv = append(argv, "--fixed-strings")
	}
	if a.CaseSensitive {
		argv = append(argv, "--case-sensitive")
	} else {
		argv = append(argv, "--ignore-case")
	}
	argv = append(argv, "--regexp", a.Pattern, "--", target)

	cmd := command(fmt.Sprintf("/proc/self/fd/%d", cwdfd), nil, "rg", argv...)
	cmd.ExtraFiles = extra
	errw := &capWriter{max: 64 << 10}
	cmd.Stderr = errw
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, newErr("internal_error", nil, "pipe: %v", err)
	}
	ch, err := s.kids.start(c.ctx, cmd)
	if err != nil {
		return nil, nil, newErr("tool_missing", nil, "cannot run ripgrep: %v", err)
	}
	fileTarget := ""
	if !isDir {
		fileTarget = resolved
	}
	cut := s.readRg(c, bufio.NewReaderSize(stdout, 256<<10), a, resolved, base, fileTarget, ig, res)
	if cut {
		res.Truncated = true
		ch.kill()
	}
	io.Copy(io.Discard, stdout)
	ch.wait()
	if c.ctx.Err() != nil {
		return nil, nil, ctxErr(c.ctx, c)
	}
	stderr := strings.TrimSpace(string(errw.buf.Bytes()))
	if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == 2 {
		switch {
		case strings.Contains(stderr, "regex parse error") || strings.Contains(stderr, "regex") && strings.Contains(stderr, "size limit"):
			return nil, nil, newErr("invalid_pattern", map[string]interface{}{"pattern": a.Pattern}, "invalid pattern: %s", stderr)
		case strings.Contains(stderr, "error parsing glob"):
			g := ""
			if a.Glob != nil {
				g = *a.Glob
			}
			return nil, nil, newErr("invalid_request", map[string]interface{}{"glob": g}, "invalid glob: %s", stderr)
		}
	}
	if stderr != "" {
		fmt.Fprintf(s.log, "dockyard-tool: rg: %s\n", firstLine(stderr))
	}
	return res, nil, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// readRg parses rg's JSON stream into res; true when it stopped early (max_results, the text
// budget) and rg must be killed.
func (s *server) readRg(c *call, br *bufio.Reader, a *searchArgs, resolved, base, fileTarget string, ig *ignoredSet, res *searchResult) bool {
	budget := 0
	withMatch := map[string]bool{}
	gotSummary := false
	defer func() {
		if !gotSummary && res.FilesSearched == 0 {
			res.FilesSearched = int64(len(withMatch))
		}
	}()
	for {
		line, skipped, err := readBoundedLine(br, maxRgLine)
		if skipped {
			res.Truncated = true
		}
		if len(line) > 0 {
			var m rgMsg
			if json.Unmarshal(line, &m) == nil {
				switch m.Type {
				case "summary":
					var sum rgSummary
					if json.Unmarshal(m.Data, &sum) == nil {
						res.FilesSearched = sum.Stats.Searches
						gotSummary = true
					}
				case "match":
					var mm rgMatch
					if json.Unmarshal(m.Data, &mm) != nil {
						break
					}
					p := string(mm.Path.get())
					var full string
					if fileTarget != "" {
						full = fileTarget
					} else {
						p = strings.TrimPrefix(p, "./")
						if ig != nil && ig.has(p) {
							break
						}
						full = joinRel(base, p)
					}
					if int64(len(res.Matches)) >= a.MaxResults {
						return true
					}
					sm := makeMatch(full, mm, int(a.MaxText))
					budget += len(sm.Text) + len(sm.Path) + 64
					if budget > searchTextBudget {
						return true
					}
					withMatch[full] = true
					res.Matches = append(res.Matches, sm)
				}
			}
		}
		if err != nil {
			return false
		}
		if c.ctx.Err() != nil {
			return true
		}
	}
}

// readBoundedLine reads one line; a line over max is consumed and dropped (skipped = true).
func readBoundedLine(br *bufio.Reader, max int) (line []byte, skipped bool, err error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if !skipped {
			if len(buf)+len(chunk) > max {
				skipped, buf = true, nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if skipped {
			return nil, true, err
		}
		return buf, false, err
	}
}

// makeMatch: column = the 1-based code point column of the first submatch; text = the line
// without its ending, or a window of maxText code points around the match.
func makeMatch(path string, mm rgMatch, maxText int) searchMatch {
	line := mm.Lines.get()
	if bytes.HasSuffix(line, []byte("\n")) {
		line = line[:len(line)-1]
		line = bytes.TrimSuffix(line, []byte("\r"))
	}
	startB := 0
	if len(mm.Submatches) > 0 {
		startB = mm.Submatches[0].Start
	}
	if startB > len(line) {
		startB = len(line)
	}
	col := utf8.RuneCount(line[:startB])
	total := col + utf8.RuneCount(line[startB:])
	text := line
	if total > maxText {
		lead := maxText / 4
		if lead > 40 {
			lead = 40
		}
		start := col - lead
		if start < 0 {
			start = 0
		}
		if start+maxText > total {
			start = total - maxText
		}
		text = runeSlice(line, start, start+maxText)
	}
	return searchMatch{Path: path, Line: mm.LineNumber, Column: int64(col + 1), Text: string(text)}
}

// runeSlice: the bytes of code points [from, to) of b.
func runeSlice(b []byte, from, to int) []byte {
	i, n, startB := 0, 0, -1
	for i < len(b) {
		if n == from {
			startB = i
		}
		if n == to {
			return b[startB:i]
		}
		_, size := utf8.DecodeRune(b[i:])
		i += size
		n++
	}
	if startB < 0 {
		startB = len(b)
	}
	return b[startB:]
}
