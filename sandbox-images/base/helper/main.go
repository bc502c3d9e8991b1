// dockyard-tool: the in-box half of dockyard's agent tools, a static binary every sandbox image
// carries at /usr/local/bin/dockyard-tool.
//
//	dockyard-tool serve [--root DIR]   the multiplexed channel (protocol version 1) on stdin/stdout
//	dockyard-tool kill MARKER          SIGKILL every process whose environment has DOCKYARD_EXEC=MARKER
//	dockyard-tool schema               the schema op's result as one JSON line
//	dockyard-tool version              {"version": 1}
//	dockyard-tool logd                 a job box's main process: its exec log FIFO onto stdout
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const defaultRoot = "/workspace"

func main() { os.Exit(realMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func realMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// A write past the fsize ulimit fails with EFBIG (disk_full) instead of killing the helper.
	signal.Ignore(syscall.SIGXFSZ)
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: dockyard-tool serve [--root DIR] | kill MARKER | schema | version | logd")
		return 2
	}
	switch args[0] {
	case "serve":
		root := defaultRoot
		rest := args[1:]
		for len(rest) > 0 {
			switch {
			case rest[0] == "--root" && len(rest) > 1:
				root, rest = rest[1], rest[2:]
			case len(rest[0]) > 7 && rest[0][:7] == "--root=":
				root, rest = rest[0][7:], rest[1:]
			default:
				fmt.Fprintf(stderr, "dockyard-tool serve: unknown argument %q\n", rest[0])
				return 2
			}
		}
		r, err := openRoot(root, os.Getenv("DOCKYARD_TOOL_FORCE_WALK") == "1")
		if err != nil {
			fmt.Fprintf(stderr, "dockyard-tool: cannot open the workspace: %v\n", err)
			return 1
		}
		return newServer(r, stdout, stderr).serve(stdin)
	case "kill":
		if len(args) != 2 {
			fmt.Fprintln(stderr, "usage: dockyard-tool kill MARKER")
			return 2
		}
		return printJSON(stdout, map[string]int{"killed": killMarked(args[1])})
	case "schema":
		return printJSON(stdout, buildSchema())
	case "version":
		return printJSON(stdout, map[string]int{"version": protocolVersion})
	case "logd":
		return runLogd(logFifo, stdout, stderr)
	}
	fmt.Fprintf(stderr, "dockyard-tool: unknown command %q\n", args[0])
	return 2
}

func printJSON(w io.Writer, v interface{}) int {
	b, err := json.Marshal(v)
	if err != nil {
		return 1
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return 1
	}
	return 0
}
