package main

// Path confinement. Every path arg is repo-relative; it is checked lexically, resolved in
// userspace exactly as the Perl helper did (symlinks followed component by component, absolute
// targets restarting at /, 40 hops), and the RESOLVED path is then opened by the kernel beneath
// the root fd with openat2(RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_SYMLINKS) — or, where
// openat2 is missing, a component-by-component openat(O_NOFOLLOW) walk. A symlink swapped in
// after the userspace resolution therefore makes the open fail (ELOOP), never escape.

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

const (
	nameMax  = 255 // bytes per path component
	maxHops  = 40  // symlinks followed per resolution (the kernel's MAXSYMLINKS)
	tmpMagic = ".dockyard-tmp-"
)

type Root struct {
	path     string // the root's real absolute path
	fd       int    // an O_PATH directory fd on it
	openat2  bool   // false: the openat-walk fallback
	resolveF uint64
}

// openRoot opens the workspace root; forceWalk selects the fallback (tests run both).
func openRoot(path string, forceWalk bool) (*Root, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, err
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return nil, err
	}
	fd, err := openat(-100, real, oPath|syscall.O_DIRECTORY, 0) // AT_FDCWD; the path is absolute
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: real, Err: err}
	}
	r := &Root{path: real, fd: fd, resolveF: resolveBeneath | resolveNoMagiclinks | resolveNoSymlinks}
	if !forceWalk {
		probe, err := openat2(fd, ".", oPath|syscall.O_DIRECTORY, 0, r.resolveF)
		switch {
		case err == nil:
			syscall.Close(probe)
			r.openat2 = true
		case errors.Is(err, syscall.ENOSYS), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.E2BIG),
			errors.Is(err, syscall.EINVAL):
			// an old kernel or a seccomp profile without openat2: the walk
		default:
			return nil, &os.PathError{Op: "openat2", Path: real, Err: err}
		}
	}
	return r, nil
}

func (r *Root) confinement() string {
	if r.openat2 {
		return "openat2"
	}
	return "openat-walk"
}

// --- lexical rules --------------------------------------------------------------------------

// The zero-width code points HFS+ ignores (U+200C..U+200F, U+202A..U+202E, U+206A..U+206F,
// U+FEFF), removed before a component is compared with .git.
var hfsIgnorable = func() [][]byte {
	var out [][]byte
	add := func(lo, hi rune) {
		for c := lo; c <= hi; c++ {
			out = append(out, []byte(string(c)))
		}
	}
	add(0x200C, 0x200F)
	add(0x202A, 0x202E)
	add(0x206A, 0x206F)
	add(0xFEFF, 0xFEFF)
	return out
}()

// isGitName: a name git refuses as a path component (verify_path): `.git` in any case, with
// trailing dots/spaces, its 8.3 name `git~1`, an NTFS stream (`.git::$DATA`), or with the
// code points HFS+ ignores.
func isGitName(p string) bool {
	b := []byte(p)
	for _, ign := range hfsIgnorable {
		b = bytes.ReplaceAll(b, ign, nil)
	}
	n := asciiLower(string(b))
	var rest string
	switch {
	case strings.HasPrefix(n, ".git"):
		rest = n[4:]
	case strings.HasPrefix(n, "git~1"):
		rest = n[5:]
	default:
		return false
	}
	tail := strings.TrimRight(rest, ". ")
	if tail == "" {
		return true
	}
	return strings.HasPrefix(n, ".git") && strings.HasPrefix(tail, ":")
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

// lexicalParts: relative, no '..', no git-name component, no component over 255 bytes.
func lexicalParts(rel string) ([]string, *opError) {
	if strings.HasPrefix(rel, "/") {
		return nil, outside(rel, "absolute paths are not allowed: %s", rel)
	}
	if strings.IndexByte(rel, 0) >= 0 {
		return nil, pathErr("invalid_request", rel, "a path must not contain a NUL byte")
	}
	var parts []string
	for _, p := range strings.Split(rel, "/") {
		if p == "" || p == "." {
			continue
		}
		if p == ".." {
			return nil, outside(rel, "'..' is not allowed in paths: %s", rel)
		}
		if isGitName(p) {
			return nil, outside(rel, "the .git folder is not accessible: %s", rel)
		}
		if len(p) > nameMax {
			return nil, newErr("invalid_request",
				map[string]interface{}{"path": rel, "reason": "name_too_long", "max_bytes": nameMax},
				"a path component is %d bytes, over the %d-byte limit: %s", len(p), nameMax, rel)
		}
		parts = append(parts, p)
	}
	return parts, nil
}

// --- userspace resolution -------------------------------------------------------------------

// resolve follows symlinks component by component the way the kernel would; components that do
// not exist yet are kept lexically. It returns the resolved path relative to the root ("" for
// the root itself) and whether it exists.
func (r *Root) resolve(rel string) (string, bool, *opError) {
	parts, e := lexicalParts(rel)
	if e != nil {
		return "", false, e
	}
	return r.resolveParts(rel, parts)
}

func (r *Root) resolveParts(rel string, todo []string) (string, bool, *opError) {
	todo = append([]string(nil), todo...)
	done := splitNonEmpty(r.path)
	hops := 0
	exists := true
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		if c == "" || c == "." {
			continue
		}
		if c == ".." {
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		if !exists {
			done = append(done, c)
			continue
		}
		cand := "/" + strings.Join(append(done[:len(done):len(done)], c), "/")
		st, err := os.Lstat(cand)
		if err == nil && st.Mode()&os.ModeSymlink != 0 {
			hops++
			if hops > maxHops {
				return "", false, outside(rel, "too many levels of symbolic links: %s", rel)
			}
			target, err := os.Readlink(cand)
			if err != nil {
				return "", false, outside(rel, "unreadable symbolic link: %s", rel)
			}
			if strings.HasPrefix(target, "/") {
				done = nil
			}
			todo = append(strings.Split(target, "/"), todo...)
			continue
		}
		if err != nil {
			exists = false
		}
		done = append(done, c)
	}
	abs := "/" + strings.Join(done, "/")
	var below string
	switch {
	case abs == r.path:
	case strings.HasPrefix(abs, r.path+"/") || r.path == "/":
		below = strings.TrimPrefix(abs[len(r.path):], "/")
	default:
		return "", false, outside(rel, "path resolves outside the workspace: %s", rel)
	}
	for _, p := range splitNonEmpty(below) {
		if isGitName(p) {
			return "", false, outside(rel, "path resolves into a .git folder: %s", rel)
		}
	}
	if e := r.checkLength(rel, below); e != nil {
		return "", false, e
	}
	return below, exists, nil
}

// pathMax is the kernel's PATH_MAX (the NUL included): git and every other tool in the box refuse
// a longer path, so a file written there could never be diffed or committed.
const pathMax = 4096

func (r *Root) checkLength(rel, below string) *opError {
	if n := len(r.path) + 1 + len(below); n >= pathMax {
		return newErr("invalid_request",
			map[string]interface{}{"path": rel, "reason": "name_too_long", "max_bytes": pathMax - 1},
			"the path is %d bytes in the box, over the %d-byte limit: %s", n, pathMax-1, rel)
	}
	return nil
}

// resolveParent resolves every component but the last and keeps the last as it is (not
// followed): what delete_file and move_file act on. parentRel "" is the root.
func (r *Root) resolveParent(rel string) (parentRel, name string, parentExists bool, e *opError) {
	parts, e := lexicalParts(rel)
	if e != nil {
		return "", "", false, e
	}
	if len(parts) == 0 {
		return "", "", true, nil
	}
	parentRel, parentExists, e = r.resolveParts(rel, parts[:len(parts)-1])
	if e == nil {
		e = r.checkLength(rel, strings.TrimPrefix(parentRel+"/"+parts[len(parts)-1], "/"))
	}
	return parentRel, parts[len(parts)-1], parentExists, e
}

func splitNonEmpty(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func splitRel(rel string) (dir, name string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}

// --- kernel enforcement ---------------------------------------------------------------------

// openBeneath opens rel (already resolved, no '..', no links expected) beneath dirfd. Any
// symlink met on the way is ELOOP; a non-directory in the middle is ENOTDIR.
func (r *Root) openBeneath(dirfd int, rel string, flags int, mode uint32) (int, error) {
	if rel == "" {
		rel = "."
	}
	if r.openat2 {
		for try := 0; ; try++ {
			fd, err := openat2(dirfd, rel, flags, mode, r.resolveF)
			if err == syscall.EAGAIN && try < 16 {
				continue
			}
			return fd, err
		}
	}
	parts := splitNonEmpty(rel)
	if len(parts) == 0 {
		parts = []string{"."}
	}
	cur := dirfd
	closeCur := func() {
		if cur != dirfd {
			syscall.Close(cur)
		}
	}
	for i, p := range parts {
		last := i == len(parts)-1
		f, m := oPath|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, uint32(0)
		if last {
			f, m = flags|syscall.O_NOFOLLOW, mode
		}
		fd, err := openat(cur, p, f, m)
		if err == syscall.ENOTDIR || err == syscall.ELOOP || (err == nil && isLinkFd(fd)) {
			if err == nil {
				syscall.Close(fd)
			}
			var st syscall.Stat_t
			if fstatat(cur, p, &st, atSymlinkNofollow) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFLNK {
				err = syscall.ELOOP
			} else if err == nil {
				err = syscall.ELOOP
			}
		}
		closeCur()
		if err != nil {
			return -1, err
		}
		cur = fd
	}
	return cur, nil
}

func isLinkFd(fd int) bool {
	var st syscall.Stat_t
	return syscall.Fstat(fd, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFLNK
}

func (r *Root) open(rel string, flags int, mode uint32) (int, error) {
	return r.openBeneath(r.fd, rel, flags, mode)
}

// openErr maps an open failure on a resolved path to the protocol's codes.
func openErr(err error, path string) *opError {
	switch {
	case errors.Is(err, syscall.ELOOP), errors.Is(err, syscall.EXDEV):
		return outside(path, "the path changed during the call (a symbolic link appeared): %s", path)
	case errors.Is(err, syscall.ENOENT):
		return pathErr("file_not_found", path, "no such file: %s", path)
	case errors.Is(err, syscall.ENOTDIR):
		return pathErr("not_a_directory", path, "a parent of %s is not a folder", path)
	case errors.Is(err, syscall.ENAMETOOLONG):
		return newErr("invalid_request", map[string]interface{}{"path": path, "reason": "name_too_long"},
			"path too long: %s", path)
	default:
		return pathErr("file_not_found", path, "cannot open %s: %s", path, errnoText(err))
	}
}

// parentDir is an opened parent folder of a target, and the folders this call created for it.
type parentDir struct {
	fd      int
	rel     string   // the folder, relative to the root
	created []string // folders made for it, outermost first
}

func (p *parentDir) close() {
	if p != nil && p.fd >= 0 {
		syscall.Close(p.fd)
		p.fd = -1
	}
}

// openDir opens the resolved folder dirRel (O_PATH); with create, the missing folders are made
// (0755, whatever the umask) one by one, each opened beneath its opened parent.
func (r *Root) openDir(dirRel, path string, create bool) (*parentDir, *opError) {
	fd, err := r.open(dirRel, oPath|syscall.O_DIRECTORY, 0)
	if err == nil {
		return &parentDir{fd: fd, rel: dirRel}, nil
	}
	if !errors.Is(err, syscall.ENOENT) || !create {
		return nil, openErr(err, path)
	}
	pd := &parentDir{fd: -1, rel: dirRel}
	cur, err := syscall.Dup(r.fd)
	if err != nil {
		return nil, pathErr("write_failed", path, "dup: %s", errnoText(err))
	}
	soFar := ""
	for _, c := range splitNonEmpty(dirRel) {
		soFar = joinRel(soFar, c)
		next, err := r.openBeneath(cur, c, oPath|syscall.O_DIRECTORY, 0)
		if errors.Is(err, syscall.ENOENT) {
			merr := syscall.Mkdirat(cur, c, 0o755)
			switch {
			case merr == nil:
				pd.created = append(pd.created, soFar)
				next, err = r.openBeneath(cur, c, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
				if err == nil {
					syscall.Fchmod(next, 0o755)
				}
			case merr == syscall.EEXIST:
				next, err = r.openBeneath(cur, c, oPath|syscall.O_DIRECTORY, 0)
			default:
				err = merr
			}
		}
		syscall.Close(cur)
		if err != nil {
			r.removeCreated(pd)
			switch {
			case errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EEXIST):
				return nil, pathErr("not_a_directory", path, "a parent of %s is not a folder", path)
			case isDiskFull(err):
				return nil, pathErr("disk_full", path, "workspace disk cap reached while creating the folders of %s", path)
			case errors.Is(err, syscall.ELOOP), errors.Is(err, syscall.EXDEV), errors.Is(err, syscall.ENAMETOOLONG):
				return nil, openErr(err, path)
			default:
				return nil, pathErr("write_failed", path, "cannot create the folders of %s: %s", path, errnoText(err))
			}
		}
		cur = next
	}
	pd.fd = cur
	return pd, nil
}

// removeCreated undoes the folders a failed or timed-out write made (innermost first; a folder
// someone filled meanwhile stays).
func (r *Root) removeCreated(pd *parentDir) {
	for i := len(pd.created) - 1; i >= 0; i-- {
		dir, name := splitRel(pd.created[i])
		fd, err := r.open(dir, oPath|syscall.O_DIRECTORY, 0)
		if err != nil {
			continue
		}
		unlinkat(fd, name, atRemovedir)
		syscall.Close(fd)
	}
	pd.created = nil
}

// lstatAt: the entry name in dirfd, links not followed. ok false when it does not exist.
func lstatAt(dirfd int, name string) (syscall.Stat_t, bool, error) {
	var st syscall.Stat_t
	err := fstatat(dirfd, name, &st, atSymlinkNofollow)
	if errors.Is(err, syscall.ENOENT) {
		return st, false, nil
	}
	return st, err == nil, err
}

func fileType(mode uint32) string {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		return "file"
	case syscall.S_IFDIR:
		return "dir"
	case syscall.S_IFLNK:
		return "symlink"
	}
	return "other"
}

// gitMode: the mode git records for an entry.
func gitMode(mode uint32) string {
	switch {
	case mode&syscall.S_IFMT == syscall.S_IFLNK:
		return "120000"
	case mode&0o100 != 0:
		return "100755"
	}
	return "100644"
}
