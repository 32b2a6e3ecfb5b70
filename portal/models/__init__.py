from .accounts import Credential, Membership, Project
from .operations import Operation

__all__ = ["Credential", "Membership", "Operation", "Project"]
