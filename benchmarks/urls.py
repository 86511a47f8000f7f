"""The product's URLs plus the textbook endpoint, which lives here and not in the product."""

from django.urls import path

from benchmarks.textbook import TextbookReadingCreateApi
from config.urls import handler400, handler404, handler500
from config.urls import urlpatterns as product_urlpatterns

urlpatterns = [
    *product_urlpatterns,
    path("bench/textbook/readings", TextbookReadingCreateApi.as_view(), name="bench-textbook"),
]

__all__ = ["handler400", "handler404", "handler500", "urlpatterns"]
