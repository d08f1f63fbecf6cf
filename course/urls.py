from django.urls import path

from course import views

urlpatterns = [
    path("course/", views.course_page, name="course"),
    path("course/<int:pk>/hand-in/", views.hand_in, name="course_hand_in"),
]
