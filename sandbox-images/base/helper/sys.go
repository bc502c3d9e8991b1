package main

// Raw syscalls Go 1.19's syscall package lacks: openat2, renameat2, fstatat, unlinkat with flags.

import (
	"syscall"
	"unsafe"
)

const (
	oPath             = 0x200000
	atSymlinkNofollow = 0x100
	atRemovedir       = 0x200
	renameNoreplace   = 1

	resolveNoMagiclinks = 0x02
	resolveNoSymlinks   = 0x04
	resolveBeneath      = 0x08
)

type openHow struct {
	Flags   uint64
	Mode    uint64
	Resolve uint64
}

func openat2(dirfd int, path string, flags int, mode uint32, resolve uint64) (int, error) {
	p, err := syscall.BytePtrFromString(path)
	if err != nil {
		return -1, err
	}
	how := openHow{Flags: uint64(flags) | syscall.O_CLOEXEC, Mode: uint64(mode), Resolve: resolve}
	for {
		fd, _, e := syscall.Syscall6(sysOpenat2, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
			uintptr(unsafe.Pointer(&how)), unsafe.Sizeof(how), 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(fd), nil
	}
}

func renameat2(olddirfd int, oldpath string, newdirfd int, newpath string, flags uint) error {
	o, err := syscall.BytePtrFromString(oldpath)
	if err != nil {
		return err
	}
	n, err := syscall.BytePtrFromString(newpath)
	if err != nil {
		return err
	}
	_, _, e := syscall.Syscall6(sysRenameat2, uintptr(olddirfd), uintptr(unsafe.Pointer(o)),
		uintptr(newdirfd), uintptr(unsafe.Pointer(n)), uintptr(flags), 0)
	if e != 0 {
		return e
	}
	return nil
}

func fstatat(dirfd int, path string, st *syscall.Stat_t, flags int) error {
	p, err := syscall.BytePtrFromString(path)
	if err != nil {
		return err
	}
	_, _, e := syscall.Syscall6(sysNewfstatat, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
		uintptr(unsafe.Pointer(st)), uintptr(flags), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func unlinkat(dirfd int, path string, flags int) error {
	p, err := syscall.BytePtrFromString(path)
	if err != nil {
		return err
	}
	_, _, e := syscall.Syscall(sysUnlinkat, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(flags))
	if e != 0 {
		return e
	}
	return nil
}

// openat retries EINTR (opening a FIFO or a slow file system can be interrupted by Go's signals).
func openat(dirfd int, path string, flags int, mode uint32) (int, error) {
	for {
		fd, err := syscall.Openat(dirfd, path, flags|syscall.O_CLOEXEC, mode)
		if err == syscall.EINTR {
			continue
		}
		return fd, err
	}
}
