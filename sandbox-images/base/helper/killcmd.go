package main

// `dockyard-tool kill MARKER`: stop the fresh execs of a linter/test box at their deadline.

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// killMarked SIGKILLs every process (but this one) whose environment holds DOCKYARD_EXEC=marker.
func killMarked(marker string) int {
	needle := []byte("DOCKYARD_EXEC=" + marker)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	self := os.Getpid()
	killed := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if bytes.Equal(kv, needle) {
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed++
				}
				break
			}
		}
	}
	return killed
}
