package main

// delete_file, move_file, list_directory.

import (
	"errors"
	"os"
	"sort"
	"strings"
	"syscall"
)

type deleteArgs struct {
	Path string `json:"path"`
}

type deleteResult struct {
	Deleted      bool    `json:"deleted"`
	BeforeSha256 *string `json:"before_sha256"`
}

type moveArgs struct {
	From      string `json:"from"`
	To        string `json:"to"`
	Overwrite bool   `json:"overwrite"`
}

type moveResult struct {
	Ignored      bool    `json:"ignored"`
	Mode         string  `json:"mode"`
	BeforeSha256 *string `json:"before_sha256"`
}

type listArgs struct {
	Path       string `json:"path"`
	Depth      int64  `json:"depth"`
	MaxEntries int64  `json:"max_entries"`
}

type listEntry struct {
	Path string `json:"path"`
	Type string `json:"type"`
	Size int64  `json:"size"`
}

type listResult struct {
	Entries   []listEntry `json:"entries"`
	Truncated bool        `json:"truncated"`
}

// listHeaderBudget keeps a listing's answer header well under the frame's 1 MiB.
const listHeaderBudget = 900 << 10

// --- delete_file ----------------------------------------------------------------------------

func opDeleteFile(s *server, c *call, a *deleteArgs, _ []byte) (*deleteResult, []byte, *opError) {
	rel := a.Path
	parent, name, pexists, e := s.root.resolveParent(rel)
	if e != nil {
		return nil, nil, e
	}
	if name == "" {
		return nil, nil, pathErr("invalid_request", rel, "cannot delete the workspace root")
	}
	if !pexists {
		return nil, nil, pathErr("file_not_found", rel, "no such file: %s", rel)
	}
	pd, e := s.root.openDir(parent, rel, false)
	if e != nil {
		return nil, nil, e
	}
	defer pd.close()
	st, ok, _ := lstatAt(pd.fd, name)
	if !ok {
		return nil, nil, pathErr("file_not_found", rel, "no such file: %s", rel)
	}
	var before *string
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		return nil, nil, pathErr("is_a_directory", rel, "%s is a folder", rel)
	case syscall.S_IFREG:
		h, err := hashAt(pd.fd, name)
		if err != nil {
			return nil, nil, pathErr("write_failed", rel, "cannot read %s: %s", rel, errnoText(err))
		}
		before = &h
	}
	if c.ctx.Err() != nil {
		return nil, nil, ctxErr(c.ctx, c)
	}
	if err := unlinkat(pd.fd, name, 0); err != nil {
		switch {
		case errors.Is(err, syscall.EISDIR):
			return nil, nil, pathErr("is_a_directory", rel, "%s is a folder", rel)
		case errors.Is(err, syscall.ENOENT):
			return nil, nil, pathErr("file_not_found", rel, "no such file: %s", rel)
		}
		return nil, nil, pathErr("write_failed", rel, "cannot delete %s: %s", rel, errnoText(err))
	}
	return &deleteResult{Deleted: true, BeforeSha256: before}, nil, nil
}

// --- move_file ------------------------------------------------------------------------------

func opMoveFile(s *server, c *call, a *moveArgs, _ []byte) (*moveResult, []byte, *opError) {
	fparent, fname, fexists, e := s.root.resolveParent(a.From)
	if e != nil {
		return nil, nil, e
	}
	tparent, tname, _, e := s.root.resolveParent(a.To)
	if e != nil {
		return nil, nil, e
	}
	if fname == "" {
		return nil, nil, pathErr("invalid_request", a.From, "cannot move the workspace root")
	}
	if tname == "" {
		return nil, nil, pathErr("is_a_directory", a.To, "%s is a folder", relOrDot(a.To))
	}
	if joinRel(fparent, fname) == joinRel(tparent, tname) {
		return nil, nil, newErr("invalid_request", map[string]interface{}{"from": a.From, "to": a.To},
			"from and to are the same file: %s", a.From)
	}
	if !fexists {
		return nil, nil, pathErr("file_not_found", a.From, "no such file: %s", a.From)
	}
	fpd, e := s.root.openDir(fparent, a.From, false)
	if e != nil {
		return nil, nil, e
	}
	defer fpd.close()
	fst, ok, _ := lstatAt(fpd.fd, fname)
	if !ok {
		return nil, nil, pathErr("file_not_found", a.From, "no such file: %s", a.From)
	}
	switch fst.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		return nil, nil, pathErr("is_a_directory", a.From, "%s is a folder", a.From)
	case syscall.S_IFREG, syscall.S_IFLNK:
	default:
		return nil, nil, pathErr("not_a_file", a.From, "not a regular file: %s", a.From)
	}
	tpd, e := s.root.openDir(tparent, a.To, true)
	if e != nil {
		return nil, nil, e
	}
	defer tpd.close()
	res, e := s.moveInto(c, fpd, fname, tpd, tname, a, fst.Mode)
	if e != nil {
		s.root.removeCreated(tpd)
		return nil, nil, e
	}
	return res, nil, nil
}

func (s *server) moveInto(c *call, fpd *parentDir, fname string, tpd *parentDir, tname string, a *moveArgs, mode uint32) (*moveResult, *opError) {
	var before *string
	tst, exists, _ := lstatAt(tpd.fd, tname)
	if exists {
		if tst.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			return nil, pathErr("is_a_directory", a.To, "%s is a folder", a.To)
		}
		if !a.Overwrite {
			return nil, pathErr("file_exists", a.To, "%s exists (overwrite is false)", a.To)
		}
		if tst.Mode&syscall.S_IFMT == syscall.S_IFREG {
			h, err := hashAt(tpd.fd, tname)
			if err != nil {
				return nil, pathErr("write_failed", a.To, "cannot read %s: %s", a.To, errnoText(err))
			}
			before = &h
		}
	}
	ignored := s.checkIgnore(c, joinRel(tpd.rel, tname))
	if c.ctx.Err() != nil {
		return nil, ctxErr(c.ctx, c)
	}
	var err error
	if a.Overwrite {
		err = syscall.Renameat(fpd.fd, fname, tpd.fd, tname)
	} else {
		err = renameat2(fpd.fd, fname, tpd.fd, tname, renameNoreplace)
		if errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EINVAL) {
			if _, there, _ := lstatAt(tpd.fd, tname); there {
				err = syscall.EEXIST
			} else {
				err = syscall.Renameat(fpd.fd, fname, tpd.fd, tname)
			}
		}
	}
	if err != nil {
		switch {
		case errors.Is(err, syscall.EEXIST) && !a.Overwrite:
			return nil, pathErr("file_exists", a.To, "%s exists (overwrite is false)", a.To)
		case errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.ENOTEMPTY), errors.Is(err, syscall.EEXIST):
			return nil, pathErr("is_a_directory", a.To, "%s is a folder", a.To)
		case errors.Is(err, syscall.ENOENT):
			return nil, pathErr("file_not_found", a.From, "no such file: %s", a.From)
		case isDiskFull(err):
			return nil, pathErr("disk_full", a.To, "workspace disk cap reached while moving to %s", a.To)
		}
		return nil, pathErr("write_failed", a.To, "cannot move %s to %s: %s", a.From, a.To, errnoText(err))
	}
	return &moveResult{Ignored: ignored, Mode: gitMode(mode), BeforeSha256: before}, nil
}

// --- list_directory -------------------------------------------------------------------------

func opListDirectory(s *server, c *call, a *listArgs, _ []byte) (*listResult, []byte, *opError) {
	rel := a.Path
	if a.Depth < 1 {
		return nil, nil, invalid("depth must be >= 1")
	}
	if a.MaxEntries < 0 {
		return nil, nil, invalid("max_entries must be >= 0")
	}
	resolved, exists, e := s.root.resolve(rel)
	if e != nil {
		return nil, nil, e
	}
	if !exists {
		return nil, nil, pathErr("file_not_found", rel, "no such folder: %s", rel)
	}
	fd, err := s.root.open(resolved, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		if errors.Is(err, syscall.ENOTDIR) {
			return nil, nil, pathErr("not_a_directory", rel, "not a folder: %s", rel)
		}
		if errors.Is(err, syscall.ENOENT) {
			return nil, nil, pathErr("file_not_found", rel, "no such folder: %s", rel)
		}
		return nil, nil, openErr(err, rel)
	}
	type item struct {
		rel   string
		level int64
	}
	res := &listResult{Entries: []listEntry{}}
	queue := []item{{resolved, 1}}
	budget := 0
	first := true
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		if c.ctx.Err() != nil {
			if !first {
				syscall.Close(fd)
			}
			return nil, nil, ctxErr(c.ctx, c)
		}
		if !first {
			fd, err = s.root.open(it.rel, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
			if err != nil {
				continue
			}
		}
		first = false
		f := os.NewFile(uintptr(fd), it.rel)
		names, _ := f.Readdirnames(-1)
		sort.Strings(names)
		stop := false
		for _, name := range names {
			if name == ".git" {
				continue
			}
			var st syscall.Stat_t
			if fstatat(fd, name, &st, atSymlinkNofollow) != nil {
				continue
			}
			if strings.HasPrefix(name, tmpMagic) {
				continue
			}
			p := joinRel(it.rel, name)
			if int64(len(res.Entries)) >= a.MaxEntries || budget+len(p)+48 > listHeaderBudget {
				res.Truncated = true
				stop = true
				break
			}
			typ := fileType(st.Mode)
			size := int64(0)
			if typ == "file" {
				size = st.Size
			}
			res.Entries = append(res.Entries, listEntry{Path: p, Type: typ, Size: size})
			budget += len(p) + 48
			if typ == "dir" && it.level < a.Depth {
				queue = append(queue, item{p, it.level + 1})
			}
		}
		f.Close()
		if stop {
			break
		}
	}
	return res, nil, nil
}
