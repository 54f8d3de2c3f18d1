package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// StorageNode condition types, set by the node agent.
const (
	// StorageConditionAgentAlive is True while the agent renews its Lease.
	StorageConditionAgentAlive = "AgentAlive"
	// StorageConditionWritable is True when the storage root accepted a test write.
	StorageConditionWritable = "StorageWritable"
	// StorageConditionIOErrors is True when the agent saw I/O errors recently.
	StorageConditionIOErrors = "IOErrors"
	// StorageConditionNearlyFull is True when free space is below the agent's threshold.
	StorageConditionNearlyFull = "NearlyFull"
)

// StorageHealth summarises a StorageNode's conditions for placement.
// +kubebuilder:validation:Enum=Unknown;Healthy;Degraded;Down
type StorageHealth string

const (
	// StorageUnknown: no recent report from the agent.
	StorageUnknown StorageHealth = "Unknown"
	// StorageHealthy: volumes on the node can be used.
	StorageHealthy StorageHealth = "Healthy"
	// StorageDegraded: usable, but nearly full or with recent I/O errors.
	StorageDegraded StorageHealth = "Degraded"
	// StorageDown: volumes on the node cannot be used.
	StorageDown StorageHealth = "Down"
)

// StorageNodeSpec names the node and driver a StorageNode describes.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: a StorageNode describes one driver on one node"
type StorageNodeSpec struct {
	// NodeName of the Kubernetes Node.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	NodeName string `json:"nodeName"`
	// Driver whose storage this is.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Driver string `json:"driver"`
}

// StorageCapacity is a node's storage space.
type StorageCapacity struct {
	// TotalBytes of the storage root's file system.
	// +optional
	TotalBytes int64 `json:"totalBytes,omitempty"`
	// FreeBytes available to Stork.
	// +optional
	FreeBytes int64 `json:"freeBytes,omitempty"`
}

// StorageNodeStatus is the node's storage as its agent last saw it.
type StorageNodeStatus struct {
	// Health summarises the conditions.
	// +optional
	Health StorageHealth `json:"health,omitempty"`
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: AgentAlive, StorageWritable, IOErrors, NearlyFull.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Topology of the node.
	// +optional
	Topology Topology `json:"topology,omitempty"`
	// Capacity of the node's storage.
	// +optional
	Capacity StorageCapacity `json:"capacity,omitempty"`
	// StorageRoot is the directory the agent keeps volumes in.
	// +optional
	StorageRoot string `json:"storageRoot,omitempty"`
	// LastHeartbeatTime is when the agent last reported.
	// +optional
	LastHeartbeatTime *metav1.Time `json:"lastHeartbeatTime,omitempty"`
	// AgentVersion of the reporting agent.
	// +optional
	AgentVersion string `json:"agentVersion,omitempty"`
}

// StorageNode is one node's storage for one driver, as the driver's agent reports it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=sn,categories=stork
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.nodeName`
// +kubebuilder:printcolumn:name="Driver",type=string,JSONPath=`.spec.driver`
// +kubebuilder:printcolumn:name="Health",type=string,JSONPath=`.status.health`
// +kubebuilder:printcolumn:name="Zone",type=string,JSONPath=`.status.topology.zone`
// +kubebuilder:printcolumn:name="Free",type=integer,JSONPath=`.status.capacity.freeBytes`
// +kubebuilder:printcolumn:name="Heartbeat",type=date,JSONPath=`.status.lastHeartbeatTime`
type StorageNode struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   StorageNodeSpec   `json:"spec"`
	Status StorageNodeStatus `json:"status,omitempty"`
}

// StorageNodeList is a list of StorageNodes.
// +kubebuilder:object:root=true
type StorageNodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []StorageNode `json:"items"`
}
