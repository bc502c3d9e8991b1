package main

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	big := make([]byte, 20<<20)
	rand.Read(big)
	bodies := [][]byte{nil, {0, 1, 2, 0xff, '\n', '\r', 0}, []byte("DY\x01\x02 inside a body"), big}
	var buf bytes.Buffer
	for i, b := range bodies {
		if err := writeFrame(&buf, kindRequest, []byte(`{"id":`+string(rune('1'+i))+`}`), b); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range bodies {
		h, b, err := readFrame(&buf, kindRequest)
		if err != nil {
			t.Fatal(err)
		}
		if string(h) != `{"id":`+string(rune('1'+i))+`}` || !bytes.Equal(b, want) {
			t.Fatalf("frame %d differs (header %q, body %d bytes, want %d)", i, h, len(b), len(want))
		}
	}
	if _, _, err := readFrame(&buf, kindRequest); err != io.EOF {
		t.Fatalf("want EOF at a frame boundary, got %v", err)
	}
}

func TestFrameRejects(t *testing.T) {
	good := framePrefix(kindRequest, []byte("{}"), 0)
	cases := map[string][]byte{
		"magic":   append([]byte("XY"), good[2:]...),
		"version": append([]byte{'D', 'Y', 2}, good[3:]...),
		"kind":    append([]byte{'D', 'Y', 1, kindResponse}, good[4:]...),
	}
	h0 := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(h0[4:8], 0)
	cases["empty header"] = h0
	hBig := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(hBig[4:8], maxHeaderBytes+1)
	cases["header over 1 MiB"] = hBig
	bBig := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(bBig[8:12], maxBodyBytes+1)
	cases["body over 64 MiB"] = bBig
	for name, frame := range cases {
		_, _, err := readFrame(bytes.NewReader(frame), kindRequest)
		var perr *errProtocol
		if !errors.As(err, &perr) {
			t.Errorf("%s: want a protocol error, got %v", name, err)
		}
	}
	if _, _, err := readFrame(bytes.NewReader(good[:5]), kindRequest); err != io.ErrUnexpectedEOF {
		t.Errorf("a cut prefix: %v", err)
	}
	if _, _, err := readFrame(bytes.NewReader(good[:len(good)-1]), kindRequest); err != io.ErrUnexpectedEOF {
		t.Errorf("a cut header: %v", err)
	}
}
