package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func hexSum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func rf(p string, start int, end interface{}, numbered bool, capB int) map[string]interface{} {
	return map[string]interface{}{"path": p, "start_line": start, "end_line": end, "numbered": numbered, "cap": capB}
}

func TestReadFile(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "a.txt"), "one\r\ntwo\nthree")
	writeFile(t, filepath.Join(root, "empty"), "")
	writeFile(t, filepath.Join(root, "long"), strings.Repeat("x", 100)+"\nshort\n")
	os.WriteFile(filepath.Join(root, "bin"), []byte("abc\x00def"), 0o644)
	os.MkdirAll(filepath.Join(root, "dir"), 0o755)
	syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644)
	c := newClient(t, root, false)
	var r readFileResult
	b := c.ok("read_file", rf("a.txt", 1, nil, false, 1000), nil, &r).Body
	if string(b) != "one\r\ntwo\nthree" || r.TotalLines != 3 || r.SizeBytes != 14 || r.StartLine != 1 || r.EndLine != 3 || r.Truncated || r.ContentSha256 != hexSum(b) {
		t.Fatalf("%q %+v", b, r)
	}
	b = c.ok("read_file", rf("a.txt", 2, 2, true, 1000), nil, &r).Body
	if string(b) != "     2\ttwo\n" || r.StartLine != 2 || r.EndLine != 2 {
		t.Fatalf("%q %+v", b, r)
	}
	b = c.ok("read_file", rf("a.txt", 2, 99, true, 1000), nil, &r).Body
	if string(b) != "     2\ttwo\n     3\tthree" || r.EndLine != 3 {
		t.Fatalf("%q %+v", b, r)
	}
	// cut at a line boundary
	b = c.ok("read_file", rf("a.txt", 1, nil, false, 9), nil, &r).Body
	if string(b) != "one\r\ntwo\n" || !r.Truncated || r.EndLine != 2 {
		t.Fatalf("%q %+v", b, r)
	}
	// a single line over the cap is cut at cap bytes
	b = c.ok("read_file", rf("long", 1, nil, false, 10), nil, &r).Body
	if string(b) != "xxxxxxxxxx" || !r.Truncated || r.EndLine != 1 || r.TotalLines != 2 {
		t.Fatalf("%q %+v", b, r)
	}
	b = c.ok("read_file", rf("long", 1, nil, true, 10), nil, &r).Body
	if string(b) != "     1\txxx" {
		t.Fatalf("%q", b)
	}
	// start past the end
	e := c.fail("read_file", rf("a.txt", 4, nil, false, 100), nil, "invalid_request")
	if e.Error.Details["total_lines"] != float64(3) || e.Error.Details["path"] != "a.txt" {
		t.Fatal(e.Error.Details)
	}
	// start > end: nothing, end_line = start - 1 (the Perl loop)
	b = c.ok("read_file", rf("a.txt", 3, 2, false, 100), nil, &r).Body
	if len(b) != 0 || r.StartLine != 3 || r.EndLine != 2 {
		t.Fatalf("%q %+v", b, r)
	}
	b = c.ok("read_file", rf("empty", 5, nil, false, 100), nil, &r).Body
	if len(b) != 0 || r.StartLine != 0 || r.EndLine != 0 || r.TotalLines != 0 || r.ContentSha256 != hexSum(nil) {
		t.Fatalf("%+v", r)
	}
	c.fail("read_file", rf("bin", 1, nil, false, 100), nil, "binary_file")
	c.fail("read_file", rf("missing", 1, nil, false, 100), nil, "file_not_found")
	c.fail("read_file", rf("dir", 1, nil, false, 100), nil, "not_a_file")
	c.fail("read_file", rf("", 1, nil, false, 100), nil, "not_a_file")
	c.fail("read_file", rf("fifo", 1, nil, false, 100), nil, "not_a_file")
}

func TestReadFileStreamsBigFile(t *testing.T) {
	root := t.TempDir()
	var buf bytes.Buffer
	for i := 0; i < 300000; i++ {
		buf.WriteString("line of some text\n")
	}
	os.WriteFile(filepath.Join(root, "big"), buf.Bytes(), 0o644)
	c := newClient(t, root, false)
	var r readFileResult
	b := c.ok("read_file", rf("big", 299999, nil, true, 1000), nil, &r).Body
	if r.TotalLines != 300000 || r.EndLine != 300000 || string(b) != "299999\tline of some text\n300000\tline of some text\n" {
		t.Fatalf("%q %+v", b, r)
	}
}

func wf(p string, exe interface{}) map[string]interface{} {
	return map[string]interface{}{"path": p, "executable": exe}
}

func TestWriteFile(t *testing.T) {
	old := syscall.Umask(0o077) // modes come from fchmod, not the umask
	defer syscall.Umask(old)
	root, _ := gitRepo(t, map[string]string{".gitignore": "*.log\nbuild/\n", "tracked.log": "t\n", "keep.txt": "k\n"}, "tracked.log")
	c := newClient(t, root, false)
	var w writeFileResult
	data := []byte("\x00\x01binary\xff")
	c.ok("write_file", wf("new/deep/a.bin", nil), data, &w)
	got, _ := os.ReadFile(filepath.Join(root, "new/deep/a.bin"))
	if !bytes.Equal(got, data) || !w.Created || w.BytesWritten != int64(len(data)) || w.Mode != "100644" || w.Ignored ||
		w.BeforeSha256 != nil || w.ContentSha256 != hexSum(data) {
		t.Fatalf("%+v", w)
	}
	for p, want := range map[string]os.FileMode{"new": 0o755, "new/deep": 0o755, "new/deep/a.bin": 0o644} {
		st, _ := os.Stat(filepath.Join(root, p))
		if st.Mode().Perm() != want {
			t.Errorf("%s: %v", p, st.Mode().Perm())
		}
	}
	c.ok("write_file", wf("run.sh", true), []byte("#!/bin/sh\n"), &w)
	st, _ := os.Stat(filepath.Join(root, "run.sh"))
	if w.Mode != "100755" || st.Mode().Perm() != 0o755 {
		t.Fatalf("%+v %v", w, st.Mode())
	}
	c.ok("write_file", wf("run.sh", nil), []byte("#!/bin/sh\necho\n"), &w) // null keeps the mode
	st, _ = os.Stat(filepath.Join(root, "run.sh"))
	if w.Mode != "100755" || st.Mode().Perm() != 0o755 || w.Created || w.BeforeSha256 == nil || *w.BeforeSha256 != hexSum([]byte("#!/bin/sh\n")) {
		t.Fatalf("%+v %v", w, st.Mode())
	}
	c.ok("write_file", wf("run.sh", false), []byte("x"), &w)
	st, _ = os.Stat(filepath.Join(root, "run.sh"))
	if w.Mode != "100644" || st.Mode().Perm() != 0o644 {
		t.Fatalf("%+v %v", w, st.Mode())
	}
	// ignored
	for p, want := range map[string]bool{"x.log": true, "build/out/o.txt": true, "src/a.txt": false, "tracked.log": false, "keep.txt": false} {
		c.ok("write_file", wf(p, nil), []byte("y"), &w)
		if w.Ignored != want {
			t.Errorf("%s: ignored %v", p, w.Ignored)
		}
	}
	c.fail("write_file", wf("keep.txt/x", nil), []byte("y"), "not_a_directory")
	c.fail("write_file", wf("keep.txt/x/y", nil), []byte("y"), "not_a_directory")
	c.fail("write_file", wf("", nil), []byte("y"), "invalid_request")
	c.fail("write_file", wf(".", nil), []byte("y"), "invalid_request")
	c.fail("write_file", wf("new", nil), []byte("y"), "not_a_file")
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpMagic) {
			t.Fatalf("temp file left: %s", e.Name())
		}
	}
	// a 20 MiB write with a deadline it cannot meet changes nothing
	_, ch := c.start("write_file", wf("keep.txt", nil), bytes.Repeat([]byte("z"), 20<<20), 1)
	if r := c.wait(ch); r.code() == "timed_out" {
		if b, _ := os.ReadFile(filepath.Join(root, "keep.txt")); string(b) != "y" {
			t.Fatalf("a timed-out write changed the file: %d bytes", len(b))
		}
	}
	_, ch = c.start("write_file", wf("fresh/dir/f.txt", nil), bytes.Repeat([]byte("z"), 20<<20), 1)
	if r := c.wait(ch); r.code() == "timed_out" {
		if _, err := os.Stat(filepath.Join(root, "fresh")); err == nil {
			t.Fatal("a timed-out write left its folders")
		}
	}
}

func TestWriteFileDiskFull(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root for a tmpfs")
	}
	root := t.TempDir()
	if err := syscall.Mount("tmpfs", root, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	defer syscall.Unmount(root, syscall.MNT_DETACH)
	c := newClient(t, root, false)
	c.fail("write_file", wf("big", nil), bytes.Repeat([]byte("z"), 1<<20), "disk_full")
	ents, _ := os.ReadDir(root)
	if len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}

func rep(p string, n, oldLen int) map[string]interface{} {
	return map[string]interface{}{"path": p, "expected_count": n, "old_len": oldLen}
}

func TestReplaceInFile(t *testing.T) {
	root := t.TempDir()
	lines := []string{}
	for i := 1; i <= 20; i++ {
		lines = append(lines, "line "+string(rune('a'+i-1)))
	}
	text := strings.Join(lines, "\n") + "\n"
	os.WriteFile(filepath.Join(root, "f.txt"), []byte(text), 0o755)
	os.WriteFile(filepath.Join(root, "bin"), []byte("a\x00b"), 0o644)
	c := newClient(t, root, false)
	var r replaceResult
	body := c.ok("replace_in_file", rep("f.txt", 1, 6), []byte("line j"+"LINE J\nextra"), &r).Body
	want := "     7\tline g\n     8\tline h\n     9\tline i\n    10\tLINE J\n    11\textra\n    12\tline k\n    13\tline l\n    14\tline m\n"
	if string(body) != want || r.Replacements != 1 || r.BeforeSha256 != hexSum([]byte(text)) {
		t.Fatalf("%q %+v", body, r)
	}
	now, _ := os.ReadFile(filepath.Join(root, "f.txt"))
	st, _ := os.Stat(filepath.Join(root, "f.txt"))
	if r.ContentSha256 != hexSum(now) || st.Mode().Perm() != 0o755 || !strings.Contains(string(now), "LINE J\nextra\n") {
		t.Fatalf("%q %v", now, st.Mode())
	}
	// two ranges far apart: "...\n" between them
	os.WriteFile(filepath.Join(root, "g.txt"), []byte("x = 1\n"+strings.Repeat("pad\n", 10)+"x = 1\n"), 0o644)
	body = c.ok("replace_in_file", rep("g.txt", 2, 5), []byte("x = 1"+"y = 2"), nil).Body
	if !strings.Contains(string(body), "...\n") || !strings.HasPrefix(string(body), "     1\ty = 2\n") {
		t.Fatalf("%q", body)
	}
	e := c.fail("replace_in_file", rep("g.txt", 1, 3), []byte("pad"+"PAD"), "edit_mismatch")
	if e.Error.Details["found_count"] != float64(10) || e.Error.Details["expected_count"] != float64(1) ||
		!strings.HasPrefix(e.Error.Message, "the text occurs 10 times in g.txt, expected 1; lines 2, 3, 4") {
		t.Fatalf("%+v", e.Error)
	}
	if ol := e.Error.Details["occurrence_lines"].([]interface{}); len(ol) != 10 || ol[0] != float64(2) {
		t.Fatal(ol)
	}
	e = c.fail("replace_in_file", rep("f.txt", 1, 12), []byte("  line q xx\n"+"new"), "edit_mismatch")
	cl := e.Error.Details["closest_lines"].([]interface{})
	if len(cl) == 0 || cl[0] != float64(18) || e.Error.Details["found_count"] != float64(0) ||
		!strings.HasPrefix(e.Error.Message, "the text was not found in f.txt; closest lines: 18") {
		t.Fatalf("%+v", e.Error)
	}
	e = c.fail("replace_in_file", rep("f.txt", 1, 5), []byte("zzzzz"+"new"), "edit_mismatch")
	if e.Error.Message != "the text was not found in f.txt" || len(e.Error.Details["closest_lines"].([]interface{})) != 0 {
		t.Fatalf("%+v", e.Error)
	}
	c.fail("replace_in_file", rep("bin", 1, 1), []byte("ab"), "binary_file")
	c.fail("replace_in_file", rep("nope", 1, 1), []byte("ab"), "file_not_found")
	c.fail("replace_in_file", rep("f.txt", 1, 0), []byte("ab"), "invalid_request")
	c.fail("replace_in_file", rep("f.txt", 1, 3), []byte("ab"), "invalid_request")
	c.fail("replace_in_file", rep("f.txt", 0, 1), []byte("ab"), "invalid_request")
}

func TestSimilarity(t *testing.T) {
	if s := similarity([]byte("night"), []byte("nacht")); s != 0.25 {
		t.Fatal(s)
	}
	if similarity([]byte("a"), []byte("a")) != 1 || similarity([]byte("a"), []byte("b")) != 0 {
		t.Fatal("short strings")
	}
	_ = time.Second
}
