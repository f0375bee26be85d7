package tencent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzStrictJSONMatchesTokenReader checks the key scanner against a straightforward
// reading of the same bodies with encoding/json's tokenizer: both refuse the same
// repeated keys and invalid UTF-8 in every body encoding/json can read.
func FuzzStrictJSONMatchesTokenReader(f *testing.F) {
	for _, s := range []string{
		`{"RoomId":"a","roomid":"b"}`, `{"a":{"K":1,"\u212a":2}}`, `[{"x":1},{"x":2}]`,
		`{"a":[1,{"b":2,"B":3}]}`, `{"Room\u0049d":"a","RoomId":"b"}`, `{"a":1}`, "{\"a\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) {
			return
		}
		got, want := checkStrictJSON(body), referenceStrictJSON(body)
		if (got == nil) != (want == nil) {
			t.Fatalf("%q: scanner %v, token reader %v", body, got, want)
		}
	})
}

func referenceStrictJSON(body []byte) error {
	if !utf8.Valid(body) {
		return errors.New("body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var stack []*refObject // nil entries are arrays
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("body is not a JSON callback: %w", err)
		}
		if tok == json.Delim('}') || tok == json.Delim(']') {
			stack = stack[:len(stack)-1]
			continue
		}
		var top *refObject
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.wantKey {
			if err := top.add(tok.(string)); err != nil {
				return err
			}
			top.wantKey = false
			continue
		}
		// tok starts a value; in an object a key follows it.
		if top != nil {
			top.wantKey = true
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &refObject{wantKey: true})
		case json.Delim('['):
			stack = append(stack, nil)
		}
	}
}

// refObject tracks the keys of one object while its tokens are read.
type refObject struct {
	keys    []string // folded, until there are too many to search
	set     map[string]struct{}
	wantKey bool
}

// refMaxKeyScan is the number of keys searched linearly before a map pays off.
const refMaxKeyScan = 16

func (o *refObject) add(key string) error {
	folded := refFoldKey(key)
	if o.set == nil && len(o.keys) < refMaxKeyScan {
		for _, k := range o.keys {
			if k == folded {
				return refDuplicateKey(key)
			}
		}
		o.keys = append(o.keys, folded)
		return nil
	}
	if o.set == nil {
		o.set = make(map[string]struct{}, 2*refMaxKeyScan)
		for _, k := range o.keys {
			o.set[k] = struct{}{}
		}
	}
	if _, dup := o.set[folded]; dup {
		return refDuplicateKey(key)
	}
	o.set[folded] = struct{}{}
	return nil
}

func refDuplicateKey(key string) error {
	return fmt.Errorf("body repeats the key %.64q in one object (keys match regardless of case)", key)
}

// foldKey folds a key as encoding/json does when it matches keys to struct fields.
func refFoldKey(key string) string {
	var b []byte
	for _, r := range key {
		b = utf8.AppendRune(b, unicode.ToUpper(unicode.ToLower(r)))
	}
	return string(b)
}
