/** Who the caller is and what the identity backend says about lessons, whatever the backend. */

export interface Principal {
  userId: number;
  isMentor: boolean;
  /** Token expiry, seconds since the epoch, when the token carries one. */
  expiresAt?: number;
}

export interface LessonInfo {
  id: number;
  /** The mentor's user id. */
  teacherId: number;
  courseId?: number;
}

/** What a request presents: its bearer token and the cookies the backend may need. */
export interface Credentials {
  token: string;
  cookies: Record<string, string>;
}

export interface Identity {
  readonly kind: "django" | "directory";
  /** Proves the token and names its user; throws AppError 401 (bad token) or 503 (backend down). */
  authenticate(cred: Credentials): Promise<Principal>;
  /** null when there is no such lesson. */
  lesson(lessonId: number, cred: Credentials): Promise<LessonInfo | null>;
  /** Whether the student has an active enrollment in the lesson's course. */
  studentAllowed(lessonId: number, studentId: number, cred: Credentials): Promise<boolean>;
  /** Whether the backend answered its last call (for /readyz). */
  healthy(): boolean;
}
