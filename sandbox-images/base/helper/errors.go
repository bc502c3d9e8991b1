package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"
)

// opError is a refusal with a protocol error code; every op failure the service sees is one.
type opError struct {
	Code    string                 `json:"code"`
	Message string                 `json:"message"`
	Details map[string]interface{} `json:"details"`
}

func (e *opError) Error() string { return e.Code + ": " + e.Message }

func newErr(code string, details map[string]interface{}, format string, a ...interface{}) *opError {
	if details == nil {
		details = map[string]interface{}{}
	}
	return &opError{Code: code, Message: fmt.Sprintf(format, a...), Details: details}
}

func pathErr(code, path, format string, a ...interface{}) *opError {
	return newErr(code, map[string]interface{}{"path": path}, format, a...)
}

func outside(path, format string, a ...interface{}) *opError {
	return pathErr("path_outside_workspace", path, format, a...)
}

func invalid(format string, a ...interface{}) *opError {
	return newErr("invalid_request", nil, format, a...)
}

// ctxErr converts a finished context into the error code the request answers with.
func ctxErr(ctx context.Context, c *call) *opError {
	if c != nil && c.wasCancelled() {
		return newErr("cancelled", nil, "cancelled by request")
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return newErr("timed_out", nil, "the request's deadline passed")
	}
	return newErr("cancelled", nil, "cancelled")
}

// isDiskFull: the errnos a full workspace (or the fsize ulimit) shows as.
func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EFBIG) || errors.Is(err, syscall.EDQUOT)
}

func errnoText(err error) string {
	var en syscall.Errno
	if errors.As(err, &en) {
		return en.Error()
	}
	return err.Error()
}
