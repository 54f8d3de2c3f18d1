package main

import (
	"context"
	"fmt"
	"reflect"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// mapReader is a client.Reader over objects in maps that hands out deep copies, which is what a
// Get from controller-runtime's informer cache costs (an indexer lookup and a DeepCopy). The
// controller-runtime fake client would also convert through JSON on every Get and so measure
// the fake, not the extender.
type mapReader struct {
	objs map[string]any
}

func (r *mapReader) put(ns, name string, o runtime.Object) {
	r.objs[fmt.Sprintf("%T/%s/%s", o, ns, name)] = o
}

func (r *mapReader) Get(_ context.Context, key client.ObjectKey, out client.Object, _ ...client.GetOption) error {
	o, ok := r.objs[fmt.Sprintf("%T/%s/%s", out, key.Namespace, key.Name)]
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Resource: fmt.Sprintf("%T", out)}, key.Name)
	}
	reflect.ValueOf(out).Elem().Set(reflect.ValueOf(o.(runtime.Object).DeepCopyObject()).Elem())
	return nil
}

func (r *mapReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return fmt.Errorf("the extender lists nothing per request")
}
