package placement

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	jsoniter "github.com/json-iterator/go"
	corev1 "k8s.io/api/core/v1"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
)

// The extender's JSON, written for the one request shape that matters at scale: thousands of
// node names in, thousands of names or scores out. With encoding/json (or json-iterator's
// reflection) a request with 5,000 names spent more time decoding and encoding the names than
// deciding about them (docs/performance.md, make bench-extender), so names are read with
// json-iterator's streaming Iterator and answers written by appending bytes. The Pod and whole
// Nodes, which are rare or small, still go through the reflection-based codec.

var wire = jsoniter.ConfigCompatibleWithStandardLibrary

// decodeArgs reads ExtenderArgs as encoding/json would: field names match case-insensitively,
// unknown fields are skipped, null leaves a field nil.
func decodeArgs(r io.Reader, args *extenderv1.ExtenderArgs, s *scratch) error {
	s.body.Reset()
	if _, err := s.body.ReadFrom(r); err != nil {
		return err
	}
	if s.table == nil {
		s.table = buildTable(nil, nil)
	}
	it := wire.BorrowIterator(s.body.Bytes())
	defer wire.ReturnIterator(it)
	if it.WhatIsNext() != jsoniter.ObjectValue {
		return errors.New("the body is not a JSON object")
	}
	// ReadObjectCB rather than a ReadObject loop: ReadObject returns "" both at the end of the
	// object and for a field named "", which would end the loop early (found by FuzzDecodeArgs).
	var err error
	fallback := false
	it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
		if it.WhatIsNext() == jsoniter.NilValue {
			it.Skip()
			return true
		}
		switch {
		case strings.EqualFold(field, "Pod"):
			args.Pod = &corev1.Pod{}
			it.ReadVal(args.Pod)
		case strings.EqualFold(field, "Nodes"):
			args.Nodes = &corev1.NodeList{}
			it.ReadVal(args.Nodes)
		case strings.EqualFold(field, "NodeNames"):
			if it.WhatIsNext() != jsoniter.ArrayValue {
				err = fmt.Errorf("NodeNames is not an array")
				return false
			}
			// Each name is looked up once in the node table: the answer gives both the row the
			// extender works with and the table's own string, so known names cost no allocation.
			names, rows := s.names[:0], s.rows[:0]
			for it.ReadArray() {
				if it.WhatIsNext() != jsoniter.StringValue {
					err = fmt.Errorf("NodeNames[%d] is not a string", len(names))
					return false
				}
				b := it.ReadStringAsSlice()
				if it.Error != nil || !plain(b) {
					// ReadStringAsSlice stops at the first quote and unescapes nothing. Node
					// names are DNS names and never take this path; anything else is decoded
					// by the standard codec.
					fallback = true
					return false
				}
				if row, ok := s.table.rows[string(b)]; ok { // no allocation: looked up by the bytes
					names, rows = append(names, s.table.names[row]), append(rows, row)
				} else {
					names, rows = append(names, string(b)), append(rows, -1)
				}
			}
			s.names, s.rows, s.rowsFor = names, rows, names
			args.NodeNames = &names
		default:
			it.Skip()
		}
		return it.Error == nil
	})
	switch {
	case fallback:
		*args = extenderv1.ExtenderArgs{}
		return json.Unmarshal(s.body.Bytes(), args)
	case err != nil:
		return err
	}
	if it.Error != nil && !errors.Is(it.Error, io.EOF) {
		return it.Error
	}
	return nil
}

// plain reports whether b needs no unescaping: printable ASCII without backslashes.
func plain(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '\\' || c >= 0x7f {
			return false
		}
	}
	return true
}

// appendString appends s as a JSON string. Node names are DNS subdomains and take the fast
// path; anything else is quoted by encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x7f || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendStringMap(b []byte, m extenderv1.FailedNodesMap) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	b = append(b, '{')
	first := true
	for k, v := range m {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, v)
	}
	return append(b, '}')
}

// appendFilterResult appends a filter result to b; results carrying whole Nodes take the codec.
func appendFilterResult(b []byte, res *extenderv1.ExtenderFilterResult) ([]byte, error) {
	if res.Nodes != nil {
		data, err := wire.Marshal(res)
		return append(b, data...), err
	}
	b = append(b, `{"Nodes":null,"NodeNames":`...)
	if res.NodeNames == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, n := range *res.NodeNames {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, n)
		}
		b = append(b, ']')
	}
	b = append(b, `,"FailedNodes":`...)
	b = appendStringMap(b, res.FailedNodes)
	b = append(b, `,"FailedAndUnresolvableNodes":`...)
	b = appendStringMap(b, res.FailedAndUnresolvableNodes)
	b = append(b, `,"Error":`...)
	b = appendString(b, res.Error)
	return append(b, '}', '\n'), nil
}

// appendPriorities appends a HostPriorityList to b.
func appendPriorities(b []byte, list *extenderv1.HostPriorityList) []byte {
	if list == nil {
		return append(b, "null\n"...)
	}
	b = append(b, '[')
	for i, h := range *list {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"Host":`...)
		b = appendString(b, h.Host)
		b = append(b, `,"Score":`...)
		b = strconv.AppendInt(b, h.Score, 10)
		b = append(b, '}')
	}
	return append(b, ']', '\n')
}
