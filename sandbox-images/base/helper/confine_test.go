package main

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func readArgs(p string) map[string]interface{} {
	return map[string]interface{}{"path": p, "start_line": 1, "end_line": nil, "numbered": false, "cap": 1 << 20}
}

// confinedTree: a root with in-tree links and links out, and a folder outside it.
func confinedTree(t *testing.T) (root, out string) {
	base := t.TempDir()
	root, out = filepath.Join(base, "ws"), filepath.Join(base, "outside")
	writeFile(t, filepath.Join(out, "secret.txt"), "secret\n")
	writeFile(t, filepath.Join(root, "sub", "in.txt"), "inside\n")
	writeFile(t, filepath.Join(root, ".git", "config"), "[core]\n")
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("sub", filepath.Join(root, "rel-link")))
	must(os.Symlink(filepath.Join(root, "sub"), filepath.Join(root, "abs-link")))
	must(os.Symlink(out, filepath.Join(root, "out-link")))
	must(os.Symlink("../outside/secret.txt", filepath.Join(root, "dotdot-link")))
	must(os.Symlink(".git", filepath.Join(root, "git-link")))
	must(os.Symlink("loop-b", filepath.Join(root, "loop-a")))
	must(os.Symlink("loop-a", filepath.Join(root, "loop-b")))
	must(os.Symlink("/etc/passwd", filepath.Join(root, "etc-link")))
	return root, out
}

func TestConfinementRules(t *testing.T) {
	bothModes(t, func(t *testing.T, walk bool) {
		root, _ := confinedTree(t)
		c := newClient(t, root, walk)
		refused := []string{
			"/etc/passwd", "../outside/secret.txt", "sub/../../outside/secret.txt", "sub/../in.txt",
			".git/config", ".GIT/config", ".Git", ".git.", ".git. . ", "git~1/config", "GIT~1",
			".git::$DATA", ".git:stream", ".g\u200cit/config", "\ufeff.git", ".git\u200f", "\u206a.GiT\u202e",
			"sub/.git/x", "out-link/secret.txt", "out-link", "dotdot-link", "git-link/config",
			"loop-a", "etc-link",
		}
		for _, p := range refused {
			r := c.fail("read_file", readArgs(p), nil, "path_outside_workspace")
			if r.Error.Details["path"] != p {
				t.Errorf("%q: details %v", p, r.Error.Details)
			}
			c.fail("write_file", map[string]interface{}{"path": p, "executable": nil}, []byte("x"), "path_outside_workspace")
		}
		// not git names
		for _, p := range []string{".gitignore", ".github/x", "git", ".git~1", "x.git", "..foo"} {
			c.ok("write_file", map[string]interface{}{"path": p, "executable": nil}, []byte("ok\n"), nil)
		}
		// in-tree links are followed, relative and absolute
		for _, p := range []string{"sub/in.txt", "rel-link/in.txt", "abs-link/in.txt", "./sub//in.txt"} {
			r := c.ok("read_file", readArgs(p), nil, nil)
			if string(r.Body) != "inside\n" {
				t.Errorf("%q: %q", p, r.Body)
			}
		}
		var w writeFileResult
		c.ok("write_file", map[string]interface{}{"path": "abs-link/new.txt", "executable": nil}, []byte("n"), &w)
		if b, _ := os.ReadFile(filepath.Join(root, "sub", "new.txt")); string(b) != "n" || !w.Created {
			t.Fatalf("write through an in-tree link: %q %+v", b, w)
		}
		long := strings.Repeat("a", 256)
		r := c.fail("read_file", readArgs("sub/"+long), nil, "invalid_request")
		if r.Error.Details["reason"] != "name_too_long" || r.Error.Details["max_bytes"] != float64(255) {
			t.Fatalf("%v", r.Error.Details)
		}
		c.fail("read_file", readArgs(strings.Repeat("a", 255)), nil, "file_not_found")
		if _, err := os.Stat(filepath.Join(root, "..", "outside", "x")); err == nil {
			t.Fatal("something was written outside")
		}
	})
}

func TestGitNames(t *testing.T) {
	yes := []string{".git", ".GIT", ".git ", ".git..", "git~1", "GIT~1.", ".git:", ".git::$INDEX_ALLOCATION", ".gi\u200dt", "\u200c.git"}
	no := []string{".gitx", "git", ".gitignore", "git~2", "x.git", ".git~1", "a:.git"}
	for _, n := range yes {
		if !isGitName(n) {
			t.Errorf("%q should be a git name", n)
		}
	}
	for _, n := range no {
		if isGitName(n) {
			t.Errorf("%q is not a git name", n)
		}
	}
}

// A folder flipped between a real directory and a link to outside while writes run: nothing
// may ever land outside.
func TestSymlinkSwapDuringWrites(t *testing.T) {
	bothModes(t, func(t *testing.T, walk bool) {
		base := t.TempDir()
		root, out := filepath.Join(base, "ws"), filepath.Join(base, "outside")
		os.MkdirAll(filepath.Join(root, "sub"), 0o755)
		os.MkdirAll(out, 0o755)
		c := newClient(t, root, walk)
		var stop int32
		var wg sync.WaitGroup
		flips := 0
		wg.Add(1)
		if err := os.Symlink(out, filepath.Join(root, "sub.link")); err != nil {
			t.Fatal(err)
		}
		rootfd := c.srv.root.fd
		go func() {
			defer wg.Done()
			// RENAME_EXCHANGE: "sub" is always there, a folder or a link to outside
			for atomic.LoadInt32(&stop) == 0 {
				if renameat2(rootfd, "sub", rootfd, "sub.link", 2) == nil {
					flips++
				}
				time.Sleep(20 * time.Microsecond)
			}
		}()
		codes := map[string]int{}
		kernel := 0 // refusals by the kernel check, after the userspace resolution passed
		deadline := time.Now().Add(1500 * time.Millisecond)
		for i := 0; time.Now().Before(deadline); i++ {
			var chans []chan resp
			for j := 0; j < 16; j++ {
				_, ch := c.start("write_file", map[string]interface{}{"path": "sub/deep/f.txt", "executable": nil}, []byte("data"), 5000)
				chans = append(chans, ch)
				_, ch = c.start("write_file", map[string]interface{}{"path": "sub/f.txt", "executable": nil}, []byte("data"), 5000)
				chans = append(chans, ch)
			}
			for _, ch := range chans {
				r := c.wait(ch)
				codes[r.code()]++
				if r.Error != nil && strings.Contains(r.Error.Message, "changed during the call") {
					kernel++
				}
			}
		}
		atomic.StoreInt32(&stop, 1)
		wg.Wait()
		ents, _ := os.ReadDir(out)
		if len(ents) != 0 {
			t.Fatalf("written outside: %v", ents)
		}
		t.Logf("%d flips; answers %v; %d refused by the kernel check", flips, codes, kernel)
		if kernel == 0 {
			t.Fatal("the kernel check never caught a swap")
		}
		if codes[""] == 0 || codes["path_outside_workspace"] == 0 {
			t.Fatalf("the race was not exercised: %v", codes)
		}
		for code := range codes {
			if code != "" && code != "path_outside_workspace" && code != "not_a_directory" && code != "write_failed" && code != "file_not_found" {
				t.Fatalf("unexpected answer %q", code)
			}
		}
	})
}
