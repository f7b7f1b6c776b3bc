package events

import (
	"errors"
	"fmt"
	"strings"
)

// Code is a contract error code.
type Code string

const (
	CodeValidation     Code = "validation"
	CodeNotFound       Code = "not_found"
	CodeConflict       Code = "conflict"
	CodeUnique         Code = "unique"
	CodeBucketNotFound Code = "bucket_not_found"
	CodeBucketExists   Code = "bucket_exists"
	CodeBadRequest     Code = "bad_request"
	CodeUnavailable    Code = "unavailable"
	// CodeIndeterminate: the store cannot know whether the write was
	// applied (its append got no answer, or was not synced); retry it with
	// the same command id, which applies it at most once.
	CodeIndeterminate Code = "indeterminate"
	CodeInternal      Code = "internal"
	CodeTooLarge      Code = "too_large" // past a documented cap (limits.go), refused before anything applies
)

// Issue is one problem found while validating a record.
type Issue struct {
	Field   string `json:"field"`
	Message string `json:"message"`
	Code    string `json:"code"`
}

// Error is a command failure as carried in a reply. It compares equal under
// errors.Is to any *Error with the same Code, so the sentinels below work:
//
//	if errors.Is(err, events.ErrNotFound) { ... }
type Error struct {
	Code    Code    `json:"code"`
	Message string  `json:"message"`
	Issues  []Issue `json:"issues,omitempty"`
	// Op is the index of the failing operation in a transaction (extension).
	Op *int `json:"op,omitempty"`
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Code))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	for i, is := range e.Issues {
		if i == 0 {
			b.WriteString(":")
		} else {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " %s: %s (%s)", is.Field, is.Message, is.Code)
	}
	return b.String()
}

// Is matches any *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinels for errors.Is.
var (
	ErrValidation     = &Error{Code: CodeValidation}
	ErrNotFound       = &Error{Code: CodeNotFound}
	ErrConflict       = &Error{Code: CodeConflict}
	ErrUnique         = &Error{Code: CodeUnique}
	ErrBucketNotFound = &Error{Code: CodeBucketNotFound}
	ErrBucketExists   = &Error{Code: CodeBucketExists}
	ErrBadRequest     = &Error{Code: CodeBadRequest}
	ErrUnavailable    = &Error{Code: CodeUnavailable}
	ErrIndeterminate  = &Error{Code: CodeIndeterminate}
	ErrInternal       = &Error{Code: CodeInternal}
	ErrTooLarge       = &Error{Code: CodeTooLarge}
)

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the contract code of err, or CodeInternal when err is not
// (and does not wrap) a non-nil *Error; a nil *Error held in an error
// interface is no *Error, not a panic.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) && e != nil {
		return e.Code
	}
	return CodeInternal
}
