package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/opendistribution/odi/internal/auth"
	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/store"
)

// Error carries the status and the short public message a failed request is
// answered with. The cause, if any, is logged and never shown.
type Error struct {
	Status int
	Msg    string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Status, e.Msg, e.Err)
	}
	return fmt.Sprintf("%d %s", e.Status, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error whose public message is formatted from args.
func Errorf(status int, format string, args ...any) error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// StatusOf picks the status and public message for err. Errors that are
// not ours to explain become 500 "internal error".
func StatusOf(err error) (int, string) {
	var he *Error
	var pe *catalog.PathError
	var mb *http.MaxBytesError
	var ae *auth.Error
	switch {
	case errors.As(err, &he):
		return he.Status, he.Msg
	case errors.As(err, &pe):
		return http.StatusBadRequest, pe.Error()
	case errors.As(err, &ae):
		return http.StatusUnauthorized, ae.Error()
	case errors.As(err, &mb):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mb.Limit)
	case errors.Is(err, catalog.ErrBadDigest):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "not found"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "request cancelled"
	}
	return http.StatusInternalServerError, "internal error"
}

// HandlerFunc is an HTTP handler that returns its failure instead of
// writing it. It must return nil once it has started writing a response.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Handle adapts fn to http.Handler. A returned error is answered with
// StatusOf's status and message — as {"error": msg} under /api/, as one
// line of text elsewhere — and logged when it is the server's fault.
func Handle(log *slog.Logger, fn HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			WriteError(log, w, r, err)
		}
	})
}

// ErrorBody is the JSON form of an error answer.
type ErrorBody struct {
	Error string `json:"error"`
}

// WriteError answers r with err.
func WriteError(log *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	status, msg := StatusOf(err)
	if status >= 500 && r.Context().Err() == nil {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	h := w.Header()
	h.Del("Content-Length")
	h.Del("ETag")
	h.Del("Last-Modified")
	h.Del("Cache-Control")
	h.Set("X-Content-Type-Options", "nosniff")
	if strings.HasPrefix(r.URL.Path, "/api/") {
		WriteJSON(w, status, ErrorBody{Error: msg})
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		fmt.Fprintln(w, msg)
	}
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
	w.Write([]byte("\n"))
}

// DecodeJSON parses body into v, answering 400 for malformed JSON.
func DecodeJSON(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return &Error{Status: http.StatusBadRequest, Msg: "malformed JSON body: " + shortJSONError(err), Err: err}
	}
	return nil
}

func shortJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at offset %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be %s", te.Field, te.Type)
	}
	return "invalid"
}

// bodyTimeout is how long a client has to send a request body.
const bodyTimeout = time.Minute

// ReadBody reads a request body of at most limit bytes, giving the client
// a minute to send it (the servers set no ReadTimeout, so that long
// downloads are not cut; a slow body is cut here instead).
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	return readBody(w, r, limit, bodyTimeout)
}

func readBody(w http.ResponseWriter, r *http.Request, limit int64, timeout time.Duration) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(timeout))
	// The deadline must not outlive the body: net/http keeps watching the
	// connection while the handler runs, and a deadline passing then
	// cancels the context of the connection, so of this request (an event
	// stream that stays open) and of every later request it carries.
	defer rc.SetReadDeadline(time.Time{})
	return io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
}
