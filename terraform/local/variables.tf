variable "site" {
  description = "The lakehouse site these hosts make up: the middle label of every host name, and lakehouse_site (a DNS label)."
  type        = string
}

variable "domain" {
  description = "The DNS domain under the site: hosts are <name>.<site>.<domain>."
  type        = string
  default     = "lakehouse.test"
}

variable "metal_hosts" {
  description = "The systemd hosts to create, by short name, each with the service groups it runs."
  type        = map(list(string))
  default     = {}

  validation {
    condition     = alltrue([for name, _ in var.metal_hosts : can(regex("^[a-z][a-z0-9-]{0,62}$", name))])
    error_message = "Every key of metal_hosts must be a DNS label (the host's first label)."
  }
}

variable "cluster" {
  description = "An existing Kubernetes cluster to prepare (a namespace and the deployer's RBAC), or null."
  type = object({
    name       = string
    kubeconfig = string
    context    = optional(string)
    namespace  = optional(string, "lakehouse")
    groups     = list(string)
  })
  default = null
}

variable "state" {
  description = "Where this configuration's state lives, as given to the backend: echoed in the contract."
  type        = any
}

variable "ansible_playbook" {
  description = "The ansible-playbook that creates and removes the hosts (playbooks/sandbox.yml)."
  type        = string
  default     = "ansible-playbook"
}
