package main

// The op table: every op's args and result structs (the schema is reflected from them), whether
// it mutates the tree, and its function.

import (
	"encoding/json"
	"reflect"
)

type opSpec struct {
	name     string
	args     reflect.Type
	result   reflect.Type
	mutating bool
	run      func(s *server, c *call, raw json.RawMessage, body []byte) (interface{}, []byte, *opError)
}

func defOp[A any, R any](name string, mutating bool, fn func(s *server, c *call, a *A, body []byte) (*R, []byte, *opError)) *opSpec {
	return &opSpec{
		name:     name,
		args:     reflect.TypeOf((*A)(nil)).Elem(),
		result:   reflect.TypeOf((*R)(nil)).Elem(),
		mutating: mutating,
		run: func(s *server, c *call, raw json.RawMessage, body []byte) (interface{}, []byte, *opError) {
			var a A
			if e := decodeArgs(raw, &a); e != nil {
				return nil, nil, e
			}
			r, b, e := fn(s, c, &a, body)
			if e != nil {
				return nil, nil, e
			}
			return r, b, nil
		},
	}
}

type empty struct{}

type cancelArgs struct {
	ID int64 `json:"id"`
}

type cancelResult struct {
	Found bool `json:"found"`
}

var ops map[string]*opSpec

func init() {
	list := []*opSpec{
		defOp("ping", false, func(s *server, c *call, a *empty, body []byte) (*empty, []byte, *opError) {
			return &empty{}, nil, nil
		}),
		// cancel is answered by the reader itself (server.doCancel); listed for hello and schema.
		defOp("cancel", false, func(s *server, c *call, a *cancelArgs, body []byte) (*cancelResult, []byte, *opError) {
			return &cancelResult{}, nil, nil
		}),
		defOp("schema", false, func(s *server, c *call, a *empty, body []byte) (*schemaResult, []byte, *opError) {
			return buildSchema(), nil, nil
		}),
		defOp("read_file", false, opReadFile),
		defOp("write_file", true, opWriteFile),
		defOp("replace_in_file", true, opReplaceInFile),
		defOp("delete_file", true, opDeleteFile),
		defOp("move_file", true, opMoveFile),
		defOp("list_directory", false, opListDirectory),
		defOp("search", false, opSearch),
		defOp("diff", true, opDiff),
		defOp("read_blobs", false, opReadBlobs),
		defOp("note", false, opNote),
	}
	ops = map[string]*opSpec{}
	for _, o := range list {
		ops[o.name] = o
	}
}
