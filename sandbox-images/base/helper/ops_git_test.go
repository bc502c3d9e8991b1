package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDiffAndReadBlobs(t *testing.T) {
	root, base := gitRepo(t, map[string]string{"a.txt": "one\ntwo\n", "gone.txt": "bye\n"})
	writeFile(t, filepath.Join(root, "a.txt"), "one\nTWO\n")
	writeFile(t, filepath.Join(root, "new.txt"), "fresh\n")
	os.Remove(filepath.Join(root, "gone.txt"))
	c := newClient(t, root, false)
	var d diffResult
	body := c.ok("diff", map[string]interface{}{"base": base, "patch_cap": 1 << 20}, nil, &d).Body
	if len(d.Sections) != 3 || d.Sections[0]+d.Sections[1]+d.Sections[2] != len(body) || d.PatchTruncated {
		t.Fatalf("%+v", d)
	}
	raw := string(body[:d.Sections[0]])
	numstat := string(body[d.Sections[0] : d.Sections[0]+d.Sections[1]])
	patch := string(body[d.Sections[0]+d.Sections[1]:])
	if !strings.Contains(raw, " M\x00a.txt\x00") || !strings.Contains(raw, " A\x00new.txt\x00") || !strings.Contains(raw, " D\x00gone.txt\x00") {
		t.Fatalf("raw %q", raw)
	}
	if !strings.Contains(numstat, "1\t1\ta.txt\x00") {
		t.Fatalf("numstat %q", numstat)
	}
	if !strings.Contains(patch, "+TWO\n") || !strings.Contains(patch, "--- a/a.txt") {
		t.Fatalf("patch %q", patch)
	}
	c.ok("diff", map[string]interface{}{"base": base, "patch_cap": 10}, nil, &d)
	if !d.PatchTruncated || d.Sections[2] != 10 {
		t.Fatalf("%+v", d)
	}
	c.fail("diff", map[string]interface{}{"base": "HEAD", "patch_cap": 10}, nil, "invalid_request")
	c.fail("diff", map[string]interface{}{"base": strings.Repeat("0", 40), "patch_cap": 10}, nil, "git_failed")

	// the new blob's id from the raw section: ":000000 100644 <old> <new> A"
	var newSha, oldSha string
	for _, rec := range strings.Split(raw, "\x00") {
		f := strings.Fields(rec)
		if len(f) == 5 && f[4] == "M" {
			oldSha, newSha = f[2], f[3]
		}
	}
	tree := run(t, root, "git", "rev-parse", base+"^{tree}")
	var b readBlobsResult
	blobs := c.ok("read_blobs", map[string]interface{}{"shas": []string{newSha, oldSha, newSha}, "cap": 1000}, nil, &b).Body
	if string(blobs) != "one\nTWO\none\ntwo\none\nTWO\n" || len(b.Blobs) != 3 || b.Blobs[1].Sha != oldSha || b.Blobs[1].Size != 8 {
		t.Fatalf("%q %+v", blobs, b)
	}
	e := c.fail("read_blobs", map[string]interface{}{"shas": []string{newSha, oldSha}, "cap": 10}, nil, "payload_too_large")
	if e.Error.Details["bytes"] != float64(16) || e.Error.Details["cap_bytes"] != float64(10) {
		t.Fatal(e.Error.Details)
	}
	c.fail("read_blobs", map[string]interface{}{"shas": []string{strings.Repeat("1", 40)}, "cap": 10}, nil, "file_not_found")
	c.fail("read_blobs", map[string]interface{}{"shas": []string{tree}, "cap": 1000}, nil, "invalid_request")
	c.fail("read_blobs", map[string]interface{}{"shas": []string{"HEAD:a.txt"}, "cap": 1000}, nil, "invalid_request")
	c.ok("read_blobs", map[string]interface{}{"shas": []string{}, "cap": 0}, nil, &b)
	if len(b.Blobs) != 0 {
		t.Fatal(b)
	}
	// binary blob content comes back byte for byte
	bin := []byte{0, 1, 2, 255, '\n', 0}
	os.WriteFile(filepath.Join(root, "bin"), bin, 0o644)
	sha := run(t, root, "git", "hash-object", "-w", "bin")
	got := c.ok("read_blobs", map[string]interface{}{"shas": []string{sha}, "cap": 100}, nil, &b).Body
	if !bytes.Equal(got, bin) {
		t.Fatalf("%q", got)
	}
}
