"""One ``APIRouter`` per resource; ``service.app`` includes them all."""
