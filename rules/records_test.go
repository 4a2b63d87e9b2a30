package rules

import (
	"reflect"
	"testing"
)

// The headers kept in records are words to the garbage collector: a
// pointer in one would not keep what it points to alive.
func TestRecordHeadersHoldNoPointers(t *testing.T) {
	var pointers func(reflect.Type) bool
	pointers = func(ty reflect.Type) bool {
		switch ty.Kind() {
		case reflect.Pointer, reflect.String, reflect.Slice, reflect.Map, reflect.Chan, reflect.Func, reflect.Interface, reflect.UnsafePointer:
			return true
		case reflect.Array:
			return pointers(ty.Elem())
		case reflect.Struct:
			for i := range ty.NumField() {
				if pointers(ty.Field(i).Type) {
					return true
				}
			}
		}
		return false
	}
	for _, ty := range []reflect.Type{reflect.TypeFor[tracker](), reflect.TypeFor[aggState]()} {
		if pointers(ty) || ty.Align() > 8 {
			t.Errorf("%v: pointers %v, alignment %d; records hold neither pointers nor more than 8-byte alignment", ty, pointers(ty), ty.Align())
		}
	}
	if !pointers(reflect.TypeFor[struct{ a [2]struct{ s string } }]()) {
		t.Error("the check misses a string's pointer")
	}
}
