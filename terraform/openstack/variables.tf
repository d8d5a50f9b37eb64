variable "site" {
  description = "The lakehouse site these hosts make up: the middle label of every host name, and lakehouse_site (a DNS label)."
  type        = string
}

variable "dns_zone" {
  description = "The Designate zone the hosts' names are published in (with its trailing dot): hosts are <name>.<site>.<zone>."
  type        = string
}

variable "metal_hosts" {
  description = "The instances to create, by short name: the service groups each runs and its flavor."
  type = map(object({
    groups = list(string)
    flavor = string
  }))

  validation {
    condition     = alltrue([for name, _ in var.metal_hosts : can(regex("^[a-z][a-z0-9-]{0,62}$", name))])
    error_message = "Every key of metal_hosts must be a DNS label (the host's first label)."
  }
}

variable "image" {
  description = "The Glance image of every instance: Debian 12, as the project's test hosts."
  type        = string
  default     = "debian-12"
}

variable "network" {
  description = "The Neutron network the instances join."
  type        = string
}

variable "key_pair" {
  description = "The Nova key pair the controller logs in with."
  type        = string
}

variable "ssh_user" {
  description = "The image's login user (it becomes root with sudo)."
  type        = string
  default     = "debian"
}

variable "controller_cidr" {
  description = "The network the controller reaches the hosts from, over SSH and the service ports."
  type        = string
}

variable "state" {
  description = "Where this configuration's state lives, as given to the backend: echoed in the contract."
  type        = any
}
