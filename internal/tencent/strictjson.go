package tencent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// checkStrictJSON refuses what encoding/json would accept silently but change: bytes that
// are not UTF-8 (it replaces them with U+FFFD) and objects that repeat a key, compared
// the way encoding/json matches keys to fields, regardless of case (it keeps the last,
// so a body could carry two values of RoomId and be read as either). It is one pass over
// the bytes without allocating for the keys of ordinary callbacks: it runs on every
// callback, member churn included.
func checkStrictJSON(body []byte) error {
	if !utf8.Valid(body) {
		return errors.New("body is not valid UTF-8")
	}
	s := &keyScanner{b: body}
	s.skipSpace()
	if err := s.value(0); err != nil && !errors.Is(err, errSyntax) {
		return err
	}
	// Syntax errors, and what follows the value, are encoding/json's to report: it reads
	// the body next and refuses it with the details.
	return nil
}

// maxDepth bounds nesting, as encoding/json does.
const maxDepth = 1000

// errSyntax says the body is not JSON.
var errSyntax = errors.New("body is not JSON")

// keyScanner walks JSON values and checks each object's keys.
type keyScanner struct {
	b    []byte
	i    int
	keys [][]byte // keys of the objects being read, innermost last
}

func (s *keyScanner) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *keyScanner) value(depth int) error {
	if s.i >= len(s.b) {
		return errSyntax
	}
	if depth > maxDepth {
		return fmt.Errorf("body nests values more than %d deep", maxDepth)
	}
	switch s.b[s.i] {
	case '{':
		return s.object(depth)
	case '[':
		return s.array(depth)
	case '"':
		_, err := s.str()
		return err
	}
	// A number, true, false or null: its bytes up to the next delimiter.
	start := s.i
	for s.i < len(s.b) && !delimiter(s.b[s.i]) {
		s.i++
	}
	if s.i == start {
		return errSyntax
	}
	return nil
}

// delimiter reports whether c ends a number, true, false or null.
func delimiter(c byte) bool {
	switch c {
	case ',', ']', '}', ':', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}

func (s *keyScanner) array(depth int) error {
	s.i++ // [
	s.skipSpace()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		if err := s.value(depth + 1); err != nil {
			return err
		}
		s.skipSpace()
		if s.i >= len(s.b) {
			return errSyntax
		}
		switch s.b[s.i] {
		case ',':
			s.i++
			s.skipSpace()
		case ']':
			s.i++
			return nil
		default:
			return errSyntax
		}
	}
}

func (s *keyScanner) object(depth int) error {
	s.i++ // {
	first := len(s.keys)
	defer func() { s.keys = s.keys[:first] }()
	var folded map[string]struct{} // for objects with many keys
	s.skipSpace()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return errSyntax
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		if folded == nil && len(s.keys)-first < maxKeyScan {
			for _, k := range s.keys[first:] {
				if sameKey(k, key) {
					return duplicateKey(key)
				}
			}
			s.keys = append(s.keys, key)
		} else {
			if folded == nil {
				folded = make(map[string]struct{}, 4*maxKeyScan)
				for _, k := range s.keys[first:] {
					folded[foldKey(k)] = struct{}{}
				}
			}
			f := foldKey(key)
			if _, dup := folded[f]; dup {
				return duplicateKey(key)
			}
			folded[f] = struct{}{}
		}
		s.skipSpace()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return errSyntax
		}
		s.i++
		s.skipSpace()
		if err := s.value(depth + 1); err != nil {
			return err
		}
		s.skipSpace()
		if s.i >= len(s.b) {
			return errSyntax
		}
		switch s.b[s.i] {
		case ',':
			s.i++
			s.skipSpace()
		case '}':
			s.i++
			return nil
		default:
			return errSyntax
		}
	}
}

// str reads a string at s.i and returns its value: the bytes themselves when it has no
// escapes, which is every key Tencent sends.
func (s *keyScanner) str() ([]byte, error) {
	start := s.i
	s.i++ // opening quote
	escaped := false
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			escaped = true
			s.i += 2
			continue
		case '"':
			s.i++
			if !escaped {
				return s.b[start+1 : s.i-1], nil
			}
			var v string
			if err := json.Unmarshal(s.b[start:s.i], &v); err != nil {
				return nil, errSyntax
			}
			return []byte(v), nil
		}
		s.i++
	}
	return nil, errSyntax
}

// maxKeyScan is the number of keys compared one by one before a map pays off.
const maxKeyScan = 16

// sameKey reports whether encoding/json would take a and b for the same field.
func sameKey(a, b []byte) bool {
	if ascii(a) && ascii(b) {
		return bytes.EqualFold(a, b)
	}
	return foldKey(a) == foldKey(b)
}

func ascii(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func duplicateKey(key []byte) error {
	return fmt.Errorf("body repeats the key %.64q in one object (keys match regardless of case)", key)
}

// foldKey folds a key as encoding/json does when it matches keys to struct fields: non-
// ASCII letters such as the Kelvin sign fold to ASCII ones.
func foldKey(key []byte) string {
	b := make([]byte, 0, len(key))
	for _, r := range string(key) {
		b = utf8.AppendRune(b, unicode.ToUpper(unicode.ToLower(r)))
	}
	return string(b)
}
