package main

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"
)

func srch(path, pattern string, glob interface{}) map[string]interface{} {
	return map[string]interface{}{"path": path, "pattern": pattern, "glob": glob, "fixed_string": false,
		"case_sensitive": true, "max_results": 100, "max_text": 200}
}

func paths(r searchResult) []string {
	var out []string
	for _, m := range r.Matches {
		out = append(out, m.Path)
	}
	sort.Strings(out)
	return out
}

func TestSearchWhatGitSees(t *testing.T) {
	bothModes(t, func(t *testing.T, walk bool) {
		root, _ := gitRepo(t, map[string]string{
			".gitignore":      "ign/\n*.log\n",
			"src/a.py":        "needle a\n",
			"src/b.txt":       "needle b\n",
			"ign/tracked.py":  "needle tracked-in-ignored\n",
			"ign/tracked.txt": "needle tracked txt\n",
			"kept.log":        "needle tracked log\n",
			"weird [x]*.txt":  "needle weird\n",
		}, "ign/tracked.py", "ign/tracked.txt", "kept.log")
		writeFile(t, filepath.Join(root, "ign/untracked.py"), "needle untracked ignored\n")
		writeFile(t, filepath.Join(root, "ign/deep/u.py"), "needle deep ignored\n")
		writeFile(t, filepath.Join(root, "new.py"), "needle untracked\n")
		writeFile(t, filepath.Join(root, "x.log"), "needle ignored log\n")
		writeFile(t, filepath.Join(root, ".hidden.py"), "needle hidden\n")
		writeFile(t, filepath.Join(root, "weird [x]*.log"), "needle weird ignored\n")
		c := newClient(t, root, walk)
		var r searchResult
		c.ok("search", srch("", "needle", nil), nil, &r)
		got := strings.Join(paths(r), ",")
		want := ".hidden.py,ign/tracked.py,ign/tracked.txt,kept.log,new.py,src/a.py,src/b.txt,weird [x]*.txt"
		if got != want || r.Truncated {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
		c.ok("search", srch("", "needle", "*.py"), nil, &r)
		if got := strings.Join(paths(r), ","); got != ".hidden.py,ign/tracked.py,new.py,src/a.py" {
			t.Fatalf("glob *.py: %s", got)
		}
		c.ok("search", srch("ign", "needle", "*.txt"), nil, &r)
		if got := strings.Join(paths(r), ","); got != "ign/tracked.txt" {
			t.Fatalf("glob *.txt under ign: %s", got)
		}
		c.ok("search", srch("ign/deep", "needle", nil), nil, &r)
		if len(r.Matches) != 0 {
			t.Fatalf("an ignored folder searched: %+v", r)
		}
		c.ok("search", srch("src/a.py", "needle", nil), nil, &r)
		if got := strings.Join(paths(r), ","); got != "src/a.py" || r.Matches[0].Line != 1 || r.Matches[0].Column != 1 {
			t.Fatalf("one file: %+v", r)
		}
		c.ok("search", srch("", "NEEDLE A", nil), nil, &r)
		if len(r.Matches) != 0 {
			t.Fatal("case_sensitive")
		}
		a := srch("", "NEEDLE A", nil)
		a["case_sensitive"] = false
		c.ok("search", a, nil, &r)
		if len(r.Matches) != 1 {
			t.Fatalf("case-insensitive: %+v", r)
		}
		a = srch("", "[x]*", nil)
		a["fixed_string"] = true
		c.ok("search", a, nil, &r)
		if len(r.Matches) != 0 {
			t.Fatalf("fixed string: %+v", r)
		}
		a = srch("", "needle", nil)
		a["max_results"] = 3
		c.ok("search", a, nil, &r)
		if len(r.Matches) != 3 || !r.Truncated {
			t.Fatalf("max_results: %+v", r)
		}
		c.fail("search", srch("", "(", nil), nil, "invalid_pattern")
		e := c.fail("search", srch("", "x", "[a"), nil, "invalid_request")
		if e.Error.Details["glob"] != "[a" {
			t.Fatal(e.Error.Details)
		}
		c.fail("search", srch("nope", "x", nil), nil, "file_not_found")
		c.fail("search", srch(".git", "x", nil), nil, "path_outside_workspace")
	})
}

func TestSearchLongLineWindow(t *testing.T) {
	root := t.TempDir()
	prefix := strings.Repeat("é", 3000) // two bytes each: columns count code points
	line := prefix + "NEEDLE" + strings.Repeat("-", 5000)
	writeFile(t, filepath.Join(root, "long.txt"), "short NEEDLE\r\n"+line+"\n")
	c := newClient(t, root, false)
	var r searchResult
	a := srch("", "NEEDLE", nil)
	a["max_text"] = 100
	c.ok("search", a, nil, &r)
	if len(r.Matches) != 2 {
		t.Fatalf("%+v", r)
	}
	if m := r.Matches[0]; m.Text != "short NEEDLE" || m.Column != 7 || m.Line != 1 {
		t.Fatalf("%+v", m)
	}
	m := r.Matches[1]
	if m.Line != 2 || m.Column != 3001 || utf8.RuneCountInString(m.Text) != 100 || !strings.Contains(m.Text, "NEEDLE") ||
		strings.HasPrefix(m.Text, "NEEDLE") {
		t.Fatalf("window: col %d, %d chars: %q", m.Column, utf8.RuneCountInString(m.Text), m.Text)
	}
	// a match at the very end of a long line: the window ends with the line
	writeFile(t, filepath.Join(root, "end.txt"), strings.Repeat("a", 500)+"TAIL\n")
	a = srch("end.txt", "TAIL", nil)
	a["max_text"] = 50
	c.ok("search", a, nil, &r)
	if m := r.Matches[0]; !strings.HasSuffix(m.Text, "TAIL") || len(m.Text) != 50 || m.Column != 501 {
		t.Fatalf("%+v", m)
	}
	os.Remove(filepath.Join(root, "end.txt"))
}
