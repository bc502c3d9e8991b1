package main

// Framing of the channel (both directions): a 12-byte prefix, a JSON header, a raw body.
//
//	offset 0  2 bytes  magic "DY"
//	offset 2  1 byte   version = 1
//	offset 3  1 byte   kind: 1 = request, 2 = response
//	offset 4  4 bytes  header length H, big-endian (1 .. 1 MiB)
//	offset 8  4 bytes  body length B, big-endian (0 .. 64 MiB)
//	offset 12 H bytes  header (one JSON object), then B bytes of body

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const (
	frameVersion   = 1
	kindRequest    = 1
	kindResponse   = 2
	prefixLen      = 12
	maxHeaderBytes = 1 << 20
	maxBodyBytes   = 64 << 20
)

// errProtocol marks a malformed frame: the helper answers protocol_error and exits 2.
type errProtocol struct{ msg string }

func (e *errProtocol) Error() string { return e.msg }

func protocolErrorf(format string, a ...interface{}) error {
	return &errProtocol{fmt.Sprintf(format, a...)}
}

// readFrame reads one frame of the given kind. io.EOF means the stream ended cleanly at a frame
// boundary; io.ErrUnexpectedEOF that it ended inside a frame.
func readFrame(r io.Reader, wantKind byte) (header, body []byte, err error) {
	var p [prefixLen]byte
	if _, err := io.ReadFull(r, p[:]); err != nil {
		return nil, nil, err
	}
	if p[0] != 'D' || p[1] != 'Y' {
		return nil, nil, protocolErrorf("bad magic %q", p[:2])
	}
	if p[2] != frameVersion {
		return nil, nil, protocolErrorf("unsupported version %d", p[2])
	}
	if p[3] != wantKind {
		return nil, nil, protocolErrorf("unexpected frame kind %d", p[3])
	}
	h := binary.BigEndian.Uint32(p[4:8])
	b := binary.BigEndian.Uint32(p[8:12])
	if h < 1 || h > maxHeaderBytes {
		return nil, nil, protocolErrorf("header length %d outside 1..%d", h, maxHeaderBytes)
	}
	if b > maxBodyBytes {
		return nil, nil, protocolErrorf("body length %d over %d", b, maxBodyBytes)
	}
	buf := make([]byte, int(h)+int(b))
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, nil, err
	}
	return buf[:h], buf[h:], nil
}

// frameBytes encodes the prefix and header; the body is written after it as it is.
func framePrefix(kind byte, header []byte, bodyLen int) []byte {
	out := make([]byte, prefixLen, prefixLen+len(header))
	out[0], out[1], out[2], out[3] = 'D', 'Y', frameVersion, kind
	binary.BigEndian.PutUint32(out[4:8], uint32(len(header)))
	binary.BigEndian.PutUint32(out[8:12], uint32(bodyLen))
	return append(out, header...)
}

// writeFrame writes one whole frame (small ones in a single write).
func writeFrame(w io.Writer, kind byte, header, body []byte) error {
	if len(header) < 1 || len(header) > maxHeaderBytes || len(body) > maxBodyBytes {
		return fmt.Errorf("frame out of bounds: header %d, body %d", len(header), len(body))
	}
	p := framePrefix(kind, header, len(body))
	if len(body) <= 64<<10 {
		_, err := w.Write(append(p, body...))
		return err
	}
	if _, err := w.Write(p); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}
