package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "stork.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a runtime.Scheme. It is
	// apimachinery's builder (as in k8s.io/api), not controller-runtime's, so that this package
	// and the engine below it link no controller library.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes lists every kind of the group once.
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&BackupLocation{}, &BackupLocationList{},
		&Snapshot{}, &SnapshotList{},
		&Backup{}, &BackupList{},
		&SnapshotSchedule{}, &SnapshotScheduleList{},
		&Restore{}, &RestoreList{},
		&RestoreDrill{}, &RestoreDrillList{},
		&StorageNode{}, &StorageNodeList{},
		&VolumeTask{}, &VolumeTaskList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
