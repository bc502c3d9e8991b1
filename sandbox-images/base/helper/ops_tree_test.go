package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDeleteFile(t *testing.T) {
	bothModes(t, func(t *testing.T, walk bool) {
		root := t.TempDir()
		writeFile(t, filepath.Join(root, "target.txt"), "keep me\n")
		writeFile(t, filepath.Join(root, "gone.txt"), "bye\n")
		os.MkdirAll(filepath.Join(root, "dir"), 0o755)
		os.Symlink("target.txt", filepath.Join(root, "link"))
		os.Symlink("/etc/passwd", filepath.Join(root, "out-link"))
		c := newClient(t, root, walk)
		var d deleteResult
		c.ok("delete_file", map[string]interface{}{"path": "link"}, nil, &d)
		if !d.Deleted || d.BeforeSha256 != nil {
			t.Fatalf("%+v", d)
		}
		if _, err := os.Lstat(filepath.Join(root, "link")); err == nil {
			t.Fatal("the link is still there")
		}
		if b, _ := os.ReadFile(filepath.Join(root, "target.txt")); string(b) != "keep me\n" {
			t.Fatal("the link's target was touched")
		}
		// a link out is removed itself, never followed
		c.ok("delete_file", map[string]interface{}{"path": "out-link"}, nil, &d)
		if _, err := os.Stat("/etc/passwd"); err != nil {
			t.Fatal(err)
		}
		c.ok("delete_file", map[string]interface{}{"path": "gone.txt"}, nil, &d)
		if d.BeforeSha256 == nil || *d.BeforeSha256 != hexSum([]byte("bye\n")) {
			t.Fatalf("%+v", d)
		}
		c.fail("delete_file", map[string]interface{}{"path": "gone.txt"}, nil, "file_not_found")
		c.fail("delete_file", map[string]interface{}{"path": "nodir/x"}, nil, "file_not_found")
		c.fail("delete_file", map[string]interface{}{"path": "dir"}, nil, "is_a_directory")
		c.fail("delete_file", map[string]interface{}{"path": ""}, nil, "invalid_request")
		c.fail("delete_file", map[string]interface{}{"path": "."}, nil, "invalid_request")
		c.fail("delete_file", map[string]interface{}{"path": ".git"}, nil, "path_outside_workspace")
	})
}

func mv(from, to string, overwrite bool) map[string]interface{} {
	return map[string]interface{}{"from": from, "to": to, "overwrite": overwrite}
}

func TestMoveFile(t *testing.T) {
	bothModes(t, func(t *testing.T, walk bool) {
		root, _ := gitRepo(t, map[string]string{".gitignore": "dist/\n", "a.txt": "A\n", "b.txt": "B\n", "d/x": "x"})
		os.Chmod(filepath.Join(root, "a.txt"), 0o755)
		os.Symlink("b.txt", filepath.Join(root, "l"))
		c := newClient(t, root, walk)
		var m moveResult
		c.ok("move_file", mv("a.txt", "new/dir/a.txt", false), nil, &m)
		st, err := os.Stat(filepath.Join(root, "new/dir/a.txt"))
		if err != nil || st.Mode().Perm() != 0o755 || m.Mode != "100755" || m.Ignored || m.BeforeSha256 != nil {
			t.Fatalf("%+v %v", m, err)
		}
		if _, err := os.Stat(filepath.Join(root, "a.txt")); err == nil {
			t.Fatal("from is still there")
		}
		e := c.fail("move_file", mv("new/dir/a.txt", "b.txt", false), nil, "file_exists")
		if e.Error.Details["path"] != "b.txt" {
			t.Fatal(e.Error.Details)
		}
		c.ok("move_file", mv("new/dir/a.txt", "b.txt", true), nil, &m)
		if m.BeforeSha256 == nil || *m.BeforeSha256 != hexSum([]byte("B\n")) {
			t.Fatalf("%+v", m)
		}
		if b, _ := os.ReadFile(filepath.Join(root, "b.txt")); string(b) != "A\n" {
			t.Fatalf("%q", b)
		}
		// a link moves as a link
		c.ok("move_file", mv("l", "dist/l2", false), nil, &m)
		if tgt, err := os.Readlink(filepath.Join(root, "dist/l2")); err != nil || tgt != "b.txt" || m.Mode != "120000" || !m.Ignored {
			t.Fatalf("%+v %q %v", m, tgt, err)
		}
		c.fail("move_file", mv("b.txt", "d", true), nil, "is_a_directory")
		c.fail("move_file", mv("b.txt", "d", false), nil, "is_a_directory")
		c.fail("move_file", mv("d", "e", false), nil, "is_a_directory")
		c.fail("move_file", mv("b.txt", "b.txt", true), nil, "invalid_request")
		c.fail("move_file", mv("b.txt", "./b.txt", true), nil, "invalid_request")
		c.fail("move_file", mv("nope", "z", false), nil, "file_not_found")
		c.fail("move_file", mv("b.txt", ".git/x", false), nil, "path_outside_workspace")
		c.fail("move_file", mv("b.txt", "../x", false), nil, "path_outside_workspace")
		c.fail("move_file", mv("b.txt", "d/x/y", false), nil, "not_a_directory")
	})
}

func TestListDirectory(t *testing.T) {
	bothModes(t, func(t *testing.T, walk bool) {
		root := t.TempDir()
		writeFile(t, filepath.Join(root, "b.txt"), "12345")
		writeFile(t, filepath.Join(root, "A.txt"), "1")
		writeFile(t, filepath.Join(root, "a/z.txt"), "zz")
		writeFile(t, filepath.Join(root, "a/deeper/y.txt"), "y")
		writeFile(t, filepath.Join(root, ".git/config"), "c")
		writeFile(t, filepath.Join(root, tmpMagic+"1-2-3"), "tmp")
		os.Symlink("a", filepath.Join(root, "link"))
		c := newClient(t, root, walk)
		var l listResult
		c.ok("list_directory", map[string]interface{}{"path": "", "depth": 2, "max_entries": 100}, nil, &l)
		want := []listEntry{{"A.txt", "file", 1}, {"a", "dir", 0}, {"b.txt", "file", 5}, {"link", "symlink", 0},
			{"a/deeper", "dir", 0}, {"a/z.txt", "file", 2}}
		if len(l.Entries) != len(want) || l.Truncated {
			t.Fatalf("%+v", l)
		}
		for i := range want {
			if l.Entries[i] != want[i] {
				t.Fatalf("entry %d: %+v, want %+v", i, l.Entries[i], want[i])
			}
		}
		c.ok("list_directory", map[string]interface{}{"path": "", "depth": 5, "max_entries": 3}, nil, &l)
		if len(l.Entries) != 3 || !l.Truncated {
			t.Fatalf("%+v", l)
		}
		c.ok("list_directory", map[string]interface{}{"path": "link", "depth": 1, "max_entries": 10}, nil, &l)
		if len(l.Entries) != 2 || l.Entries[0].Path != "a/deeper" {
			t.Fatalf("%+v", l)
		}
		c.ok("list_directory", map[string]interface{}{"path": "a", "depth": 1, "max_entries": 2}, nil, &l)
		if len(l.Entries) != 2 || l.Truncated {
			t.Fatalf("exactly max entries is not truncated: %+v", l)
		}
		c.fail("list_directory", map[string]interface{}{"path": "nope", "depth": 1, "max_entries": 10}, nil, "file_not_found")
		c.fail("list_directory", map[string]interface{}{"path": "b.txt", "depth": 1, "max_entries": 10}, nil, "not_a_directory")
		c.fail("list_directory", map[string]interface{}{"path": ".git", "depth": 1, "max_entries": 10}, nil, "path_outside_workspace")
	})
}
