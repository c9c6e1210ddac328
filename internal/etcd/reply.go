package etcd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// decodeReply reads one JSON reply of status with reason phrase reason.
// Streaming results come wrapped in {"result":...}; errors in either
// envelope (see parseError); a body that is not JSON is the server's own
// words, kept for the error line.
func decodeReply(op, ep string, status int, reason string, body io.Reader, resp any) error {
	// The first JSON value is the reply: a stream endpoint may send more.
	var seen bytes.Buffer
	dec := json.NewDecoder(io.TeeReader(io.LimitReader(body, maxReply), &seen))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if status != 200 {
			_, _ = io.Copy(&seen, io.LimitReader(body, 4*maxWords))
			return plainError(op, ep, status, reason, seen.Bytes())
		}
		return fmt.Errorf("etcd %s at %s: bad reply: %w", op, ep, err)
	}
	if e := parseError(op, ep, status, raw); e != nil {
		return e
	}
	var wrapped struct {
		Result json.RawMessage `json:"result"`
	}
	if json.Unmarshal(raw, &wrapped) == nil && len(wrapped.Result) > 0 {
		raw = wrapped.Result
	}
	if err := json.Unmarshal(raw, resp); err != nil {
		return fmt.Errorf("etcd %s at %s: bad reply: %w", op, ep, err)
	}
	return nil
}

// maxWords is how much of a plain-text reply an error line carries.
const maxWords = 200

// plainError is a reply that is not JSON: what the server said, clipped,
// or the reason phrase when it said nothing.
func plainError(op, ep string, status int, reason string, body []byte) *Error {
	words := strings.TrimSpace(strings.ToValidUTF8(string(body), "?"))
	if words == "" {
		return &Error{Op: op, Endpoint: ep, HTTPStatus: status, Message: reason}
	}
	if utf8.RuneCountInString(words) > maxWords {
		words = string([]rune(words)[:maxWords]) + "..."
	}
	return &Error{Op: op, Endpoint: ep, HTTPStatus: status, Message: words, PlainText: true}
}

// parseError reads the error envelopes the gateway sends, nil if raw is
// none. Unary errors: {"error":"...","code":N,"message":"..."}. Stream
// errors (keepalive, watch): etcd 3.4 sends {"error":{"grpc_code":N,
// "http_code":N,"message":"..."}}, 3.5 and later {"error":{"code":N,
// "message":"..."}}.
func parseError(op, ep string, status int, raw []byte) *Error {
	var unary struct {
		Error   json.RawMessage `json:"error"`
		Code    int             `json:"code"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(raw, &unary) != nil {
		if status != 200 {
			return plainError(op, ep, status, "", raw)
		}
		return nil
	}
	if len(unary.Error) == 0 && status == 200 {
		return nil
	}
	e := &Error{Op: op, Endpoint: ep, HTTPStatus: status, Code: unary.Code, Message: unary.Message}
	var stream struct {
		Code     int    `json:"code"`
		GRPCCode int    `json:"grpc_code"`
		HTTPCode int    `json:"http_code"`
		Message  string `json:"message"`
	}
	if len(unary.Error) > 0 && unary.Error[0] == '{' && json.Unmarshal(unary.Error, &stream) == nil {
		e.Code, e.Message = stream.GRPCCode, stream.Message
		if e.Code == 0 {
			e.Code = stream.Code
		}
		if stream.HTTPCode != 0 {
			e.HTTPStatus = stream.HTTPCode
		}
	} else if e.Message == "" && len(unary.Error) > 0 {
		_ = json.Unmarshal(unary.Error, &e.Message)
	}
	return e
}
