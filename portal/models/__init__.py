from .accounts import Credential, Membership, Project
from .batch import Job, Submission
from .catalogues import Catalogue, CatalogueCcd
from .cloud import Flavor, FloatingIP, Image, ImageShare, KeyPair, Quota, Server, shared_from
from .operations import Operation
from .storage import StorageUsage
from .workflows import Workflow, WorkflowNode

__all__ = [
    "Catalogue",
    "CatalogueCcd",
    "Credential",
    "Flavor",
    "FloatingIP",
    "Image",
    "ImageShare",
    "Job",
    "KeyPair",
    "Membership",
    "Operation",
    "Project",
    "Quota",
    "Server",
    "StorageUsage",
    "Submission",
    "Workflow",
    "WorkflowNode",
    "shared_from",
]
